//! `IORING_OP_POLL_ADD` (single-shot): completes when the fd is ready for `events`.
//! Used where a readiness edge is all there is to learn, as on a pidfd (readable once its
//! process has ended) on kernels without `IORING_OP_WAITID`.

use std::io;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::Orphan;
use crate::fd::SharedFd;

/// A one-shot poll for `events` (`POLLIN`, ...) on `fd`.
pub(crate) struct PollAdd {
    fd: SharedFd,
    events: u32,
}

impl PollAdd {
    pub(crate) fn new(fd: SharedFd, events: u32) -> Self {
        PollAdd { fd, events }
    }
}

impl Orphan for PollAdd {}

// SAFETY: a poll SQE points to no memory; the fd is kept open by the SharedFd clone.
unsafe impl OpKind for PollAdd {
    /// The events that are ready.
    type Output = io::Result<u32>;

    fn sqe(&mut self) -> Entry {
        opcode::PollAdd::new(types::Fd(self.fd.raw()), self.events).build()
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<u32> {
        result
    }
}
