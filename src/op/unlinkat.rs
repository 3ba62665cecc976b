//! `IORING_OP_UNLINKAT`: removes a file, or (with `AT_REMOVEDIR`) an empty directory.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::sys::fs as sfs;

/// `unlinkat(AT_FDCWD, path, flags)`.
pub(crate) struct UnlinkAt {
    path: CString,
    flags: i32,
}

impl UnlinkAt {
    /// Removes a file, or a directory when `dir`.
    pub(crate) fn new(path: CString, dir: bool) -> Self {
        let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
        UnlinkAt { path, flags }
    }
}

impl Orphan for UnlinkAt {}

// SAFETY: the SQE and the attempt point into `path`, a heap string owned here.
unsafe impl OpKind for UnlinkAt {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> Entry {
        opcode::UnlinkAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .flags(self.flags)
            .build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let args = [self.path.as_ptr() as u64, self.flags as u32 as u64, 0, 0];
        Some(Attempt::new(libc::AT_FDCWD, Interest::Blocking, args, run))
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

/// `unlinkat` of `[path, flags]`.
///
/// # Safety
///
/// `path` points to a NUL-terminated string.
unsafe fn run(dirfd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    // SAFETY: forwarded from the caller (the path the op owns).
    Outcome::Done(unsafe { sfs::unlinkat(dirfd, args[0] as *const libc::c_char, args[1] as i32) })
}
