//! `IORING_OP_RENAMEAT`: renames a path, replacing the target if it exists.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::sys::fs as sfs;

/// `renameat(AT_FDCWD, from, AT_FDCWD, to)`.
pub(crate) struct RenameAt {
    from: CString,
    to: CString,
}

impl RenameAt {
    pub(crate) fn new(from: CString, to: CString) -> Self {
        RenameAt { from, to }
    }
}

impl Orphan for RenameAt {}

// SAFETY: the SQE and the attempt point into `from` and `to`, heap strings owned here.
unsafe impl OpKind for RenameAt {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> Entry {
        let cwd = types::Fd(libc::AT_FDCWD);
        opcode::RenameAt::new(cwd, self.from.as_ptr(), cwd, self.to.as_ptr()).build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let args = [self.from.as_ptr() as u64, self.to.as_ptr() as u64, 0, 0];
        Some(Attempt::new(libc::AT_FDCWD, Interest::Blocking, args, run))
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

/// `renameat` of `[from, to]`.
///
/// # Safety
///
/// Both point to NUL-terminated strings.
unsafe fn run(dirfd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    let [from, to, _, _] = *args;
    // SAFETY: forwarded from the caller (the paths the op owns).
    Outcome::Done(unsafe {
        sfs::renameat(
            dirfd,
            from as *const libc::c_char,
            dirfd,
            to as *const libc::c_char,
        )
    })
}
