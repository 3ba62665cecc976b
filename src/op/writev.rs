//! `IORING_OP_WRITEV` from several owned buffers.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::{OpKind, check_iov_count, iovecs};
use crate::buf::IoBuf;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::fd::SharedFd;
use crate::sys::nonblocking as nb;

/// A vectored write of every buffer's initialized bytes, in order.
pub(crate) struct Writev<B> {
    fd: SharedFd,
    bufs: Vec<B>,
    iovecs: Vec<libc::iovec>,
    offset: u64,
    /// A regular file: the epoll engine runs it on a pool thread (`Interest::Blocking`).
    file: bool,
}

impl<B: IoBuf> Writev<B> {
    pub(crate) fn new(
        fd: SharedFd,
        mut bufs: Vec<B>,
        offset: u64,
    ) -> Result<Self, (io::Error, Vec<B>)> {
        if let Err(e) = check_iov_count(bufs.len()) {
            return Err((e, bufs));
        }
        let iovecs = iovecs(&mut bufs, |b| libc::iovec {
            iov_base: b.stable_ptr() as *mut libc::c_void,
            iov_len: b.bytes_init(),
        });
        Ok(Writev {
            fd,
            bufs,
            iovecs,
            offset,
            file: false,
        })
    }
}

impl<B> Writev<B> {
    /// Marks the op as one on a regular file, which the epoll engine runs on a pool
    /// thread instead of the loop's (epoll cannot wait on a file; see `docs/files.md`).
    pub(crate) fn on_file(mut self) -> Self {
        self.file = true;
        self
    }
}

impl<B> Orphan for Writev<B> {}

// SAFETY: the iovec array (named by the SQE and the attempt) and every buffer it names
// are heap memory owned here.
unsafe impl<B: IoBuf> OpKind for Writev<B> {
    type Output = (io::Result<usize>, Vec<B>);

    fn sqe(&mut self) -> Entry {
        opcode::Writev::new(
            types::Fd(self.fd.raw()),
            self.iovecs.as_ptr(),
            self.iovecs.len() as u32,
        )
        .offset(self.offset)
        .build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let iov = self.iovecs.as_ptr() as u64;
        let n = self.iovecs.len() as u64;
        Some(Attempt::new(
            self.fd.raw(),
            if self.file {
                Interest::Blocking
            } else {
                Interest::Write
            },
            [iov, n, self.offset, 0],
            run,
        ))
    }

    fn complete(self, result: io::Result<u32>) -> Self::Output {
        (result.map(|n| n as usize), self.bufs)
    }
}

/// `writev` (or `pwritev`) of `[iovecs, count, offset]`.
///
/// # Safety
///
/// `iovecs` names `count` iovecs, each valid for reads of its length.
unsafe fn run(fd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    let [iov, n, offset, _] = *args;
    // SAFETY: forwarded from the caller (the iovecs and buffers the op owns).
    Outcome::of(unsafe { nb::writev(fd, iov as *const libc::iovec, n as i32, offset) })
}
