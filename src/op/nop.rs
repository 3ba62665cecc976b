//! `IORING_OP_NOP`: completes at once; used by tests and benches to exercise the ring.

use std::io;

use io_uring::{opcode, squeue::Entry};

use super::OpKind;
use crate::driver::Orphan;

/// A no-op.
pub(crate) struct Nop;

impl Orphan for Nop {}

// SAFETY: a NOP SQE points to no memory.
unsafe impl OpKind for Nop {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> Entry {
        opcode::Nop::new().build()
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}
