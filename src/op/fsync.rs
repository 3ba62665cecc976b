//! `IORING_OP_FSYNC`, with `IORING_FSYNC_DATASYNC` for `fdatasync`.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::fd::SharedFd;
use crate::sys::fs as sfs;

/// Flushes a file's data (and, unless `datasync`, its metadata) to the device.
pub(crate) struct Fsync {
    fd: SharedFd,
    datasync: bool,
}

impl Fsync {
    pub(crate) fn new(fd: SharedFd, datasync: bool) -> Self {
        Fsync { fd, datasync }
    }
}

impl Orphan for Fsync {}

// SAFETY: an FSYNC SQE points to no memory.
unsafe impl OpKind for Fsync {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> Entry {
        let flags = if self.datasync {
            types::FsyncFlags::DATASYNC
        } else {
            types::FsyncFlags::empty()
        };
        opcode::Fsync::new(types::Fd(self.fd.raw()))
            .flags(flags)
            .build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let args = [u64::from(self.datasync), 0, 0, 0];
        Some(Attempt::new(self.fd.raw(), Interest::Blocking, args, run))
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

/// `fsync`, or `fdatasync` when `args[0]` is 1.
unsafe fn run(fd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    Outcome::Done(sfs::fsync(fd, args[0] == 1))
}
