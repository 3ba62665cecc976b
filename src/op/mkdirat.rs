//! `IORING_OP_MKDIRAT`: creates a directory.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::sys::fs as sfs;

/// `mkdirat(AT_FDCWD, path, mode)`.
pub(crate) struct MkDirAt {
    path: CString,
    mode: u32,
}

impl MkDirAt {
    pub(crate) fn new(path: CString, mode: u32) -> Self {
        MkDirAt { path, mode }
    }
}

impl Orphan for MkDirAt {}

// SAFETY: the SQE and the attempt point into `path`, a heap string owned here.
unsafe impl OpKind for MkDirAt {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> Entry {
        opcode::MkDirAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .mode(self.mode)
            .build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let args = [self.path.as_ptr() as u64, u64::from(self.mode), 0, 0];
        Some(Attempt::new(libc::AT_FDCWD, Interest::Blocking, args, run))
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

/// `mkdirat` of `[path, mode]`.
///
/// # Safety
///
/// `path` points to a NUL-terminated string.
unsafe fn run(dirfd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    // SAFETY: forwarded from the caller (the path the op owns).
    Outcome::Done(unsafe { sfs::mkdirat(dirfd, args[0] as *const libc::c_char, args[1] as u32) })
}
