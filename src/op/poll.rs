//! `IORING_OP_POLL_ADD` (single-shot): completes when the fd is ready for `events`.
//! Used where a readiness edge is all there is to learn, as on a pidfd (readable once its
//! process has ended) on kernels without `IORING_OP_WAITID`.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::fd::SharedFd;
use crate::sys::nonblocking as nb;

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

    fn attempt(&mut self) -> Option<Attempt> {
        let mask = u64::from(self.events & 0xFFFF);
        Some(Attempt::new(
            self.fd.raw(),
            Interest::Read,
            [mask, 0, 0, 0],
            run,
        ))
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<u32> {
        result
    }
}

/// Asks poll(2) itself which of the events in `args[0]` the fd has now; none means wait
/// for the next edge (any edge wakes a poll of either kind).
unsafe fn run(fd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    match nb::poll_now(fd, args[0] as i16) {
        0 => Outcome::NotReady,
        r => Outcome::of(r),
    }
}
