//! `IORING_OP_ACCEPT` without the peer's address, single-shot or multishot: a server's
//! accept loop, whose completions go to its handler (the address is asked for later, if
//! at all).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Completion, Interest, Orphan, Outcome};
use crate::fd::SharedFd;
use crate::sys::nonblocking as nb;

/// Accepts connections (close-on-exec): one, or — multishot — one per completion until
/// one comes without `F_MORE`.
pub(crate) struct Accepts {
    fd: SharedFd,
    multishot: bool,
}

impl Accepts {
    /// One connection per op.
    pub(crate) fn once(fd: SharedFd) -> Self {
        Accepts {
            fd,
            multishot: false,
        }
    }

    /// A connection per completion (`IORING_ACCEPT_MULTISHOT`; emulated on epoll).
    pub(crate) fn multishot(fd: SharedFd) -> Self {
        Accepts {
            fd,
            multishot: true,
        }
    }
}

impl Accepts {
    /// The connection a completion of this op carries (`None` for an error CQE); the
    /// caller owns it from here. Call once per completion.
    pub(crate) fn accepted(c: &Completion) -> Option<OwnedFd> {
        // SAFETY: a successful accept CQE carries a new fd nobody owns yet, and each
        // completion is handed to its handler (or orphan) exactly once.
        (c.result >= 0).then(|| unsafe { OwnedFd::from_raw_fd(c.result) })
    }
}

impl Orphan for Accepts {
    fn completed(&mut self, c: &Completion) {
        drop(Accepts::accepted(c));
    }
}

// SAFETY: an accept without an address names no memory; the fd is kept open by the
// SharedFd.
unsafe impl OpKind for Accepts {
    /// Completions go to the handler, which owns each accepted fd.
    type Output = ();

    fn sqe(&mut self) -> Entry {
        let fd = types::Fd(self.fd.raw());
        if self.multishot {
            opcode::AcceptMulti::new(fd)
                .flags(libc::SOCK_CLOEXEC)
                .build()
        } else {
            opcode::Accept::new(fd, std::ptr::null_mut(), std::ptr::null_mut())
                .flags(libc::SOCK_CLOEXEC)
                .build()
        }
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let run = if self.multishot { run_multi } else { run_once };
        Some(Attempt::new(self.fd.raw(), Interest::Read, [0; ARGS], run))
    }

    fn multishot(&self) -> bool {
        self.multishot
    }

    fn complete(self, _result: io::Result<u32>) {}
}

fn accept(fd: RawFd) -> i32 {
    // SAFETY: null address and length pointers are allowed (no address is written).
    unsafe {
        nb::accept4(
            fd,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    }
}

unsafe fn run_once(fd: RawFd, _args: &mut [u64; ARGS]) -> Outcome {
    Outcome::of(accept(fd))
}

/// A connection is a completion with more to come; an error ends the op (the server
/// re-arms or backs off), as the kernel's multishot accept does.
unsafe fn run_multi(fd: RawFd, _args: &mut [u64; ARGS]) -> Outcome {
    match accept(fd) {
        r if r >= 0 => Outcome::More(r),
        r => Outcome::of(r),
    }
}
