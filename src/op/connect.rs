//! `IORING_OP_CONNECT`.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::fd::SharedFd;
use crate::sys::nonblocking as nb;
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

// SAFETY: the SQE and the attempt point into the boxed address, owned here.
unsafe impl OpKind for Connect {
    type Output = io::Result<()>;

    fn sqe(&mut self) -> Entry {
        opcode::Connect::new(types::Fd(self.fd.raw()), self.addr.as_ptr(), self.addr.len).build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let addr = self.addr.as_ptr() as u64;
        let len = u64::from(self.addr.len);
        Some(Attempt::new(
            self.fd.raw(),
            Interest::Write,
            [addr, len, NOT_STARTED, 0],
            run,
        ))
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

/// `args[2]` before the first try.
const NOT_STARTED: u64 = 0;
/// `args[2]` once `connect` answered `EINPROGRESS`.
const IN_PROGRESS: u64 = 1;

/// `connect` to `[addr, len]`; once it is in progress (`EINPROGRESS`, recorded in
/// `args[2]`), the next try — when the socket is writable — reads `SO_ERROR` instead.
///
/// # Safety
///
/// `addr` points to a socket address of `len` bytes.
unsafe fn run(fd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    let [addr, len, state, _] = *args;
    if state == IN_PROGRESS {
        return Outcome::of(nb::so_error(fd));
    }
    // SAFETY: forwarded from the caller (the address the op owns).
    let r = unsafe { nb::connect(fd, addr as *const libc::sockaddr, len as u32) };
    if r == -libc::EINPROGRESS {
        args[2] = IN_PROGRESS;
        return Outcome::NotReady;
    }
    Outcome::of(r)
}
