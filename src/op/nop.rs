//! `IORING_OP_NOP`: completes at once; used by tests and benches to exercise the ring.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};

/// A no-op.
pub(crate) struct Nop;

impl Orphan for Nop {}

// SAFETY: a NOP SQE points to no memory.
unsafe impl OpKind for Nop {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> Entry {
        opcode::Nop::new().build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        Some(Attempt::new(-1, Interest::Now, [0; ARGS], run))
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

/// Nothing to do.
unsafe fn run(_fd: RawFd, _args: &mut [u64; ARGS]) -> Outcome {
    Outcome::Done(0)
}
