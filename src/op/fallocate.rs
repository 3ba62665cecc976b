//! `IORING_OP_FALLOCATE`: reserves (or, with a mode, punches) a file's blocks.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::fd::SharedFd;
use crate::sys::fs as sfs;

/// `fallocate(fd, mode, offset, len)`.
pub(crate) struct Fallocate {
    fd: SharedFd,
    mode: i32,
    offset: u64,
    len: u64,
}

impl Fallocate {
    pub(crate) fn new(fd: SharedFd, mode: i32, offset: u64, len: u64) -> Self {
        Fallocate {
            fd,
            mode,
            offset,
            len,
        }
    }
}

impl Orphan for Fallocate {}

// SAFETY: a FALLOCATE SQE points to no memory.
unsafe impl OpKind for Fallocate {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> Entry {
        opcode::Fallocate::new(types::Fd(self.fd.raw()), self.len)
            .offset(self.offset)
            .mode(self.mode)
            .build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let args = [self.mode as u32 as u64, self.offset, self.len, 0];
        Some(Attempt::new(self.fd.raw(), Interest::Blocking, args, run))
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

/// `fallocate` of `[mode, offset, len]`.
unsafe fn run(fd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    let [mode, offset, len, _] = *args;
    Outcome::Done(sfs::fallocate(fd, mode as i32, offset, len))
}
