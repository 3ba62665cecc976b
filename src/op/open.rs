//! `IORING_OP_OPENAT`: opens a path (an owned C string kept until the completion).

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Completion, Interest, Orphan, Outcome};
use crate::sys::fs as sfs;

/// `openat(AT_FDCWD, path, flags, mode)`; `O_CLOEXEC` is always added.
pub(crate) struct OpenAt {
    path: CString,
    flags: i32,
    mode: u32,
}

impl OpenAt {
    pub(crate) fn new(path: CString, flags: i32, mode: u32) -> Self {
        OpenAt {
            path,
            flags: flags | libc::O_CLOEXEC,
            mode,
        }
    }
}

impl Orphan for OpenAt {
    fn completed(&mut self, c: &Completion) {
        // Nobody waits for the fd any more: close it.
        if c.result >= 0 {
            // SAFETY: the kernel opened this fd for us and nobody else knows it.
            drop(unsafe { OwnedFd::from_raw_fd(c.result) });
        }
    }
}

// SAFETY: the SQE and the attempt point into `path`, a heap string owned here.
unsafe impl OpKind for OpenAt {
    type Output = io::Result<OwnedFd>;

    fn sqe(&mut self) -> Entry {
        opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .flags(self.flags)
            .mode(self.mode)
            .build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let args = [
            self.path.as_ptr() as u64,
            self.flags as u32 as u64,
            u64::from(self.mode),
            0,
        ];
        Some(Attempt::new(libc::AT_FDCWD, Interest::Blocking, args, run))
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<OwnedFd> {
        // SAFETY: a non-negative OPENAT result is a new fd that we own.
        result.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }
}

/// `openat` of `[path, flags, mode]`.
///
/// # Safety
///
/// `path` points to a NUL-terminated string.
unsafe fn run(dirfd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    let [path, flags, mode, _] = *args;
    // SAFETY: forwarded from the caller (the path the op owns).
    Outcome::Done(unsafe {
        sfs::openat(
            dirfd,
            path as *const libc::c_char,
            flags as i32,
            mode as u32,
        )
    })
}
