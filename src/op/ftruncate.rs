//! `IORING_OP_FTRUNCATE` (Linux 6.9+): sets a file's length. Where the ring lacks the
//! opcode, `crate::fs` runs `ftruncate(2)` on the loop's executor instead
//! (`File::set_len`).

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::fd::SharedFd;
use crate::sys::fs as sfs;

/// `ftruncate(fd, len)`.
pub(crate) struct Ftruncate {
    fd: SharedFd,
    len: u64,
}

impl Ftruncate {
    /// The opcode, to probe for.
    pub(crate) const CODE: u8 = opcode::Ftruncate::CODE;

    pub(crate) fn new(fd: SharedFd, len: u64) -> Self {
        Ftruncate { fd, len }
    }
}

impl Orphan for Ftruncate {}

// SAFETY: an FTRUNCATE SQE points to no memory.
unsafe impl OpKind for Ftruncate {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> Entry {
        opcode::Ftruncate::new(types::Fd(self.fd.raw()), self.len).build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let args = [self.len, 0, 0, 0];
        Some(Attempt::new(self.fd.raw(), Interest::Blocking, args, run))
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

/// `ftruncate` to `args[0]` bytes.
unsafe fn run(fd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    Outcome::Done(sfs::ftruncate(fd, args[0]))
}
