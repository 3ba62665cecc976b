//! `IORING_OP_CONNECT`.

use std::io;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::Orphan;
use crate::fd::SharedFd;
use crate::sys::socket::RawAddr;

/// Connects a socket to an address.
pub(crate) struct Connect {
    fd: SharedFd,
    addr: Box<RawAddr>,
}

impl Connect {
    pub(crate) fn new(fd: SharedFd, addr: RawAddr) -> Self {
        Connect {
            fd,
            addr: Box::new(addr),
        }
    }
}

impl Orphan for Connect {}

// SAFETY: the SQE points into the boxed address, owned here.
unsafe impl OpKind for Connect {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> Entry {
        opcode::Connect::new(types::Fd(self.fd.raw()), self.addr.as_ptr(), self.addr.len).build()
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}
