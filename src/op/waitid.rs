//! `IORING_OP_WAITID` (Linux 6.7+): waits for a child to end and reaps it, as
//! `waitid(P_PIDFD, pidfd, WEXITED)` would, without blocking the loop.

use std::io;

use io_uring::{opcode, squeue::Entry};

use super::OpKind;
use crate::driver::{Attempt, Orphan};
use crate::fd::SharedFd;
use crate::sys::process::{Ended, decode_siginfo, zeroed_siginfo};

/// A wait for the child a pidfd names; the kernel writes its `siginfo_t` into `info`.
pub(crate) struct WaitId {
    pidfd: SharedFd,
    info: Box<libc::siginfo_t>,
}

impl WaitId {
    pub(crate) fn new(pidfd: SharedFd) -> Self {
        WaitId {
            pidfd,
            info: Box::new(zeroed_siginfo()),
        }
    }
}

impl Orphan for WaitId {}

// SAFETY: the SQE points only into `info`, a heap allocation owned here (moving `self`
// does not move it).
unsafe impl OpKind for WaitId {
    /// How the child ended; `Ok(None)` if the kernel reported success without one (never
    /// expected without `WNOHANG`).
    type Output = io::Result<Option<Ended>>;

    fn sqe(&mut self) -> Entry {
        let info: *mut libc::siginfo_t = &mut *self.info;
        opcode::WaitId::new(libc::P_PIDFD, self.pidfd.raw() as libc::id_t, libc::WEXITED)
            .infop(info.cast_const())
            .build()
    }

    /// Not on epoll: the process layer watches the pidfd with a [`PollAdd`](super::PollAdd)
    /// there (`Driver::supports` says no).
    fn attempt(&mut self) -> Option<Attempt> {
        None
    }

    fn complete(self, result: io::Result<u32>) -> Self::Output {
        result.map(|_| decode_siginfo(&self.info))
    }
}
