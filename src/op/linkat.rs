//! `IORING_OP_LINKAT`: creates a hard link.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::sys::fs as sfs;

/// `linkat(AT_FDCWD, original, AT_FDCWD, link, 0)`: `link` names `original`'s file.
pub(crate) struct LinkAt {
    original: CString,
    link: CString,
}

impl LinkAt {
    pub(crate) fn new(original: CString, link: CString) -> Self {
        LinkAt { original, link }
    }
}

impl Orphan for LinkAt {}

// SAFETY: the SQE and the attempt point into `original` and `link`, heap strings owned
// here.
unsafe impl OpKind for LinkAt {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> Entry {
        let cwd = types::Fd(libc::AT_FDCWD);
        opcode::LinkAt::new(cwd, self.original.as_ptr(), cwd, self.link.as_ptr()).build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let args = [
            self.original.as_ptr() as u64,
            self.link.as_ptr() as u64,
            0,
            0,
        ];
        Some(Attempt::new(libc::AT_FDCWD, Interest::Blocking, args, run))
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

/// `linkat` of `[original, link]`.
///
/// # Safety
///
/// Both point to NUL-terminated strings.
unsafe fn run(dirfd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    let [original, link, _, _] = *args;
    // SAFETY: forwarded from the caller (the paths the op owns).
    Outcome::Done(unsafe {
        sfs::linkat(
            dirfd,
            original as *const libc::c_char,
            dirfd,
            link as *const libc::c_char,
            0,
        )
    })
}
