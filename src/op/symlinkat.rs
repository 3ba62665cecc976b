//! `IORING_OP_SYMLINKAT`: creates a symbolic link.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::sys::fs as sfs;

/// `symlinkat(target, AT_FDCWD, link)`: `link` will point to `target`.
pub(crate) struct SymlinkAt {
    target: CString,
    link: CString,
}

impl SymlinkAt {
    pub(crate) fn new(target: CString, link: CString) -> Self {
        SymlinkAt { target, link }
    }
}

impl Orphan for SymlinkAt {}

// SAFETY: the SQE and the attempt point into `target` and `link`, heap strings owned here.
unsafe impl OpKind for SymlinkAt {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> Entry {
        opcode::SymlinkAt::new(
            types::Fd(libc::AT_FDCWD),
            self.target.as_ptr(),
            self.link.as_ptr(),
        )
        .build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let args = [self.target.as_ptr() as u64, self.link.as_ptr() as u64, 0, 0];
        Some(Attempt::new(libc::AT_FDCWD, Interest::Blocking, args, run))
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

/// `symlinkat` of `[target, link]`.
///
/// # Safety
///
/// Both point to NUL-terminated strings.
unsafe fn run(dirfd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    let [target, link, _, _] = *args;
    // SAFETY: forwarded from the caller (the strings the op owns).
    Outcome::Done(unsafe {
        sfs::symlinkat(
            target as *const libc::c_char,
            dirfd,
            link as *const libc::c_char,
        )
    })
}
