//! `IORING_OP_CLOSE` of an fd nothing else uses any more.

use std::io;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::sys::nonblocking as nb;

/// Closes an fd through the ring.
pub(crate) struct Close {
    fd: RawFd,
}

impl Close {
    /// Takes ownership of `fd`; it is closed by the op.
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Close {
            fd: fd.into_raw_fd(),
        }
    }
}

impl Orphan for Close {}

// SAFETY: a CLOSE SQE points to no memory.
unsafe impl OpKind for Close {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> Entry {
        opcode::Close::new(types::Fd(self.fd)).build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        Some(Attempt::new(self.fd, Interest::Close, [0; ARGS], run))
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

/// `close` (the engine forgot the fd's registration first: [`Interest::Close`]).
unsafe fn run(fd: RawFd, _args: &mut [u64; ARGS]) -> Outcome {
    Outcome::Done(nb::close(fd))
}
