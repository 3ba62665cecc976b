//! `IORING_OP_SPLICE`: moves bytes between an fd and a pipe without a userspace copy
//! (`EventLoop::sendfile`: file → pipe, pipe → socket).

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::fd::SharedFd;
use crate::sys::fs as sfs;

/// `splice(fd_in at off_in, fd_out, len)`; `off_in` is `u64::MAX` for a pipe.
pub(crate) struct Splice {
    fd_in: SharedFd,
    off_in: u64,
    fd_out: SharedFd,
    len: u32,
}

impl Splice {
    pub(crate) fn new(fd_in: SharedFd, off_in: u64, fd_out: SharedFd, len: u32) -> Self {
        Splice {
            fd_in,
            off_in,
            fd_out,
            len,
        }
    }
}

impl Orphan for Splice {}

// SAFETY: a SPLICE SQE points to no memory (the offsets travel by value).
unsafe impl OpKind for Splice {
    type Output = io::Result<usize>;

    fn sqe(&mut self) -> Entry {
        let off_in = if self.off_in == u64::MAX {
            -1
        } else {
            self.off_in as i64
        };
        opcode::Splice::new(
            types::Fd(self.fd_in.raw()),
            off_in,
            types::Fd(self.fd_out.raw()),
            -1,
            self.len,
        )
        .flags(libc::SPLICE_F_MOVE)
        .build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        // The epoll engine's sendfile uses sendfile(2); a splice there runs on the pool.
        let args = [
            self.off_in,
            self.fd_out.raw() as u32 as u64,
            u64::from(self.len),
            0,
        ];
        Some(Attempt::new(self.fd_in.raw(), Interest::Blocking, args, run))
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<usize> {
        result.map(|n| n as usize)
    }
}

/// `splice` of `[off_in, fd_out, len]`.
unsafe fn run(fd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    let [off_in, fd_out, len, _] = *args;
    Outcome::Done(sfs::splice(fd, off_in, fd_out as i32, len as usize))
}
