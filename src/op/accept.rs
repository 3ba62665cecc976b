//! `IORING_OP_ACCEPT`: one connection, with its peer address.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::driver::{ARGS, Attempt, Completion, Interest, Orphan, Outcome};
use crate::fd::SharedFd;
use crate::sys::nonblocking as nb;
use crate::sys::socket::RawAddr;

/// Accepts one connection (close-on-exec).
pub(crate) struct Accept {
    fd: SharedFd,
    addr: Box<RawAddr>,
}

impl Accept {
    pub(crate) fn new(fd: SharedFd) -> Self {
        Accept {
            fd,
            addr: Box::new(RawAddr::empty()),
        }
    }
}

impl Orphan for Accept {
    fn completed(&mut self, c: &Completion) {
        if c.result >= 0 {
            // SAFETY: a successful accept CQE carries a new fd nobody owns yet.
            drop(unsafe { OwnedFd::from_raw_fd(c.result) });
        }
    }
}

// SAFETY: the SQE and the attempt point into the boxed address, owned here.
unsafe impl OpKind for Accept {
    type Output = io::Result<(OwnedFd, RawAddr)>;

    fn sqe(&mut self) -> Entry {
        opcode::Accept::new(
            types::Fd(self.fd.raw()),
            self.addr.as_mut_ptr(),
            &mut self.addr.len,
        )
        .flags(libc::SOCK_CLOEXEC)
        .build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let addr = self.addr.as_mut_ptr() as u64;
        let len: *mut libc::socklen_t = &mut self.addr.len;
        Some(Attempt::new(
            self.fd.raw(),
            Interest::Read,
            [addr, len as u64, 0, 0],
            run,
        ))
    }

    fn complete(self, result: io::Result<u32>) -> Self::Output {
        let fd = result?;
        // SAFETY: a successful accept returns a new fd that we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok((fd, *self.addr))
    }
}

/// `accept4` (close-on-exec) with the peer address written to `[addr, len]`.
///
/// # Safety
///
/// `addr` and `len` point to a socket address buffer and its length, valid for writes.
unsafe fn run(fd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    let [addr, len, _, _] = *args;
    // SAFETY: forwarded from the caller (the address the op owns).
    Outcome::of(unsafe {
        nb::accept4(
            fd,
            addr as *mut libc::sockaddr,
            len as *mut libc::socklen_t,
            libc::SOCK_CLOEXEC,
        )
    })
}
