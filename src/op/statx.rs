//! `IORING_OP_STATX`: a file's metadata, by path or (with `AT_EMPTY_PATH`) by fd.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::fd::SharedFd;
use crate::sys::fs as sfs;

/// `statx(dirfd, path, flags, STATX_BASIC_STATS)` into a boxed `statx` owned here.
pub(crate) struct Statx {
    /// The file, for a stat by fd (kept open until the completion).
    fd: Option<SharedFd>,
    path: CString,
    flags: i32,
    out: Box<libc::statx>,
}

impl Statx {
    /// Of the file at `path`; `follow` false stats a symlink itself.
    pub(crate) fn path(path: CString, follow: bool) -> Self {
        let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
        Self::new(None, path, flags)
    }

    /// Of the open file `fd`.
    pub(crate) fn fd(fd: SharedFd) -> Self {
        Self::new(Some(fd), CString::default(), libc::AT_EMPTY_PATH)
    }

    fn new(fd: Option<SharedFd>, path: CString, flags: i32) -> Self {
        Statx {
            fd,
            path,
            flags,
            // SAFETY: statx is plain old data; all zeroes is a valid value.
            out: Box::new(unsafe { std::mem::zeroed() }),
        }
    }

    fn dirfd(&self) -> RawFd {
        self.fd.as_ref().map_or(libc::AT_FDCWD, SharedFd::raw)
    }
}

impl Orphan for Statx {}

// SAFETY: the SQE and the attempt point into `path` and `out`, heap memory owned here.
unsafe impl OpKind for Statx {
    type Output = io::Result<Box<libc::statx>>;

    fn sqe(&mut self) -> Entry {
        let out: *mut libc::statx = &mut *self.out;
        opcode::Statx::new(types::Fd(self.dirfd()), self.path.as_ptr(), out.cast())
            .flags(self.flags)
            .mask(libc::STATX_BASIC_STATS | libc::STATX_BTIME)
            .build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let out: *mut libc::statx = &mut *self.out;
        let args = [
            self.path.as_ptr() as u64,
            self.flags as u32 as u64,
            out as u64,
            0,
        ];
        Some(Attempt::new(self.dirfd(), Interest::Blocking, args, run))
    }

    fn complete(self, result: io::Result<u32>) -> Self::Output {
        result.map(|_| self.out)
    }
}

/// `statx` of `[path, flags, out]`.
///
/// # Safety
///
/// `path` is NUL-terminated and `out` valid for writing one `statx`.
unsafe fn run(dirfd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    let [path, flags, out, _] = *args;
    // SAFETY: forwarded from the caller (the path and output the op owns).
    Outcome::Done(unsafe {
        sfs::statx(
            dirfd,
            path as *const libc::c_char,
            flags as i32,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            out as *mut libc::statx,
        )
    })
}
