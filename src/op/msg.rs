//! `IORING_OP_RECVMSG` / `IORING_OP_SENDMSG` for datagrams: one buffer plus an address.
//!
//! The `msghdr`, its iovec and the address live in one heap block so their addresses stay
//! put while the op is in flight.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::buf::{IoBuf, IoBufMut};
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::fd::SharedFd;
use crate::sys::nonblocking as nb;
use crate::sys::socket::RawAddr;

/// A `msghdr` with its one `iovec` and address, boxed so their addresses stay put while
/// an op is in flight; a datagram transport keeps spent ones for its next sends.
pub(crate) struct MsgParts {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: RawAddr,
}

impl MsgParts {
    fn new(addr: Option<RawAddr>) -> Box<Self> {
        let has_addr = addr.is_some();
        let mut parts = Box::new(MsgParts {
            // SAFETY: msghdr is plain old data; all-zero is a valid (empty) header.
            hdr: unsafe { std::mem::zeroed() },
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            addr: addr.unwrap_or_else(RawAddr::empty),
        });
        parts.hdr.msg_iov = &mut parts.iov;
        parts.hdr.msg_iovlen = 1;
        if has_addr || parts.addr.len > 0 {
            parts.hdr.msg_name = parts.addr.as_mut_ptr().cast();
            parts.hdr.msg_namelen = parts.addr.len;
        }
        parts
    }
}

/// What a datagram receive returns besides the buffer.
#[derive(Clone)]
pub(crate) struct Received {
    pub(crate) len: usize,
    pub(crate) addr: RawAddr,
    /// The datagram was longer than the buffer (`MSG_TRUNC`).
    pub(crate) truncated: bool,
}

/// Receives one datagram and its sender's address.
pub(crate) struct RecvMsg<B> {
    fd: SharedFd,
    buf: B,
    parts: Box<MsgParts>,
}

impl<B: IoBufMut> RecvMsg<B> {
    pub(crate) fn new(fd: SharedFd, buf: B) -> Self {
        Self::reusing(fd, buf, None)
    }

    /// As [`RecvMsg::new`], filling `parts` (from an earlier receive's
    /// [`RecvMsg::complete_keeping_parts`]) instead of allocating new ones.
    pub(crate) fn reusing(fd: SharedFd, mut buf: B, parts: Option<Box<MsgParts>>) -> Self {
        let mut parts = match parts {
            Some(mut parts) => {
                // SAFETY: msghdr is plain old data; all-zero is a valid value.
                parts.hdr = unsafe { std::mem::zeroed() };
                parts.addr = RawAddr::empty();
                let p = &mut *parts;
                p.hdr.msg_iov = &mut p.iov;
                p.hdr.msg_iovlen = 1;
                parts
            }
            None => MsgParts::new(None),
        };
        parts.iov.iov_base = buf.stable_mut_ptr().cast();
        parts.iov.iov_len = buf.bytes_total();
        parts.hdr.msg_name = parts.addr.as_mut_ptr().cast();
        parts.hdr.msg_namelen = parts.addr.len;
        RecvMsg { fd, buf, parts }
    }

    /// As [`OpKind::complete`], also handing back the boxed header for reuse.
    pub(crate) fn complete_keeping_parts(
        mut self,
        result: io::Result<u32>,
    ) -> (io::Result<Received>, B, Box<MsgParts>) {
        let result = self.received(result);
        (result, self.buf, self.parts)
    }

    /// Records what the kernel wrote and describes it.
    fn received(&mut self, result: io::Result<u32>) -> io::Result<Received> {
        result.map(|n| {
            let len = (n as usize).min(self.buf.bytes_total());
            // SAFETY: the kernel wrote `len` bytes at the start of the buffer.
            unsafe { self.buf.set_init(len) };
            let mut addr = self.parts.addr.clone();
            addr.len = self.parts.hdr.msg_namelen;
            Received {
                len,
                addr,
                truncated: self.parts.hdr.msg_flags & libc::MSG_TRUNC != 0,
            }
        })
    }
}

impl<B> Orphan for RecvMsg<B> {}

// SAFETY: the header, iovec, address and buffer are heap memory owned here.
unsafe impl<B: IoBufMut> OpKind for RecvMsg<B> {
    type Output = (io::Result<Received>, B);

    fn sqe(&mut self) -> Entry {
        opcode::RecvMsg::new(types::Fd(self.fd.raw()), &mut self.parts.hdr).build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let hdr: *mut libc::msghdr = &mut self.parts.hdr;
        Some(Attempt::new(
            self.fd.raw(),
            Interest::Read,
            [hdr as u64, 0, 0, 0],
            run_recvmsg,
        ))
    }

    fn complete(mut self, result: io::Result<u32>) -> Self::Output {
        let result = self.received(result);
        (result, self.buf)
    }
}

/// Sends one datagram, to `addr` or (connected sockets) to the peer.
pub(crate) struct SendMsg<B> {
    fd: SharedFd,
    buf: B,
    parts: Box<MsgParts>,
    flags: i32,
}

impl<B: IoBuf> SendMsg<B> {
    pub(crate) fn new(fd: SharedFd, buf: B, addr: Option<RawAddr>) -> Self {
        Self::reusing(fd, buf, addr, None)
    }

    /// As [`SendMsg::new`], filling `parts` (from an earlier send's
    /// [`SendMsg::complete_keeping_parts`]) instead of allocating new ones.
    pub(crate) fn reusing(
        fd: SharedFd,
        buf: B,
        addr: Option<RawAddr>,
        parts: Option<Box<MsgParts>>,
    ) -> Self {
        let has_addr = addr.is_some();
        let mut parts = match parts {
            Some(mut parts) => {
                // SAFETY: msghdr is plain old data; all-zero is a valid value.
                parts.hdr = unsafe { std::mem::zeroed() };
                parts.addr = addr.unwrap_or_else(RawAddr::empty);
                let p = &mut *parts;
                p.hdr.msg_iov = &mut p.iov;
                p.hdr.msg_iovlen = 1;
                p.hdr.msg_name = p.addr.as_mut_ptr().cast();
                p.hdr.msg_namelen = p.addr.len;
                parts
            }
            None => MsgParts::new(addr),
        };
        if !has_addr {
            parts.hdr.msg_name = std::ptr::null_mut();
            parts.hdr.msg_namelen = 0;
        }
        parts.iov.iov_base = buf.stable_ptr() as *mut libc::c_void;
        parts.iov.iov_len = buf.bytes_init();
        SendMsg {
            fd,
            buf,
            parts,
            flags: libc::MSG_NOSIGNAL,
        }
    }

    /// Makes it a send that never waits for room (`MSG_DONTWAIT`): it fails with `EAGAIN`
    /// instead, during its submission — a candidate for a quiet op
    /// (`Driver::submit_quiet`; a datagram is sent whole or not at all).
    pub(crate) fn at_once(mut self) -> Self {
        self.flags |= libc::MSG_DONTWAIT;
        self
    }

    /// The datagram's length.
    pub(crate) fn len(&self) -> usize {
        self.buf.bytes_init()
    }

    /// Whether it is an [`SendMsg::at_once`] send.
    pub(crate) fn is_at_once(&self) -> bool {
        self.flags & libc::MSG_DONTWAIT != 0
    }

    /// Makes an `at_once` send that found no room an ordinary one, to push again.
    pub(crate) fn wait_for_room(&mut self) {
        self.flags &= !libc::MSG_DONTWAIT;
    }

    /// As [`OpKind::complete`], also handing back the boxed header for reuse.
    pub(crate) fn complete_keeping_parts(
        self,
        result: io::Result<u32>,
    ) -> (io::Result<usize>, B, Box<MsgParts>) {
        (result.map(|n| n as usize), self.buf, self.parts)
    }
}

impl<B> Orphan for SendMsg<B> {}

// SAFETY: the header, iovec, address and buffer (named by the SQE and the attempt) are
// heap memory owned here. An `at_once` send (the only one with a quiet result) finishes
// during its submission; a datagram goes whole or fails with a CQE.
unsafe impl<B: IoBuf> OpKind for SendMsg<B> {
    type Output = (io::Result<usize>, B);

    fn sqe(&mut self) -> Entry {
        opcode::SendMsg::new(types::Fd(self.fd.raw()), &self.parts.hdr)
            .flags(self.flags as u32)
            .build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let hdr: *const libc::msghdr = &self.parts.hdr;
        Some(Attempt::new(
            self.fd.raw(),
            Interest::Write,
            [hdr as u64, self.flags as u64, 0, 0],
            run_sendmsg,
        ))
    }

    fn quiet_result(&self) -> Option<i32> {
        if !self.is_at_once() {
            return None;
        }
        i32::try_from(self.len()).ok()
    }

    fn complete(self, result: io::Result<u32>) -> Self::Output {
        (result.map(|n| n as usize), self.buf)
    }
}

/// `recvmsg` into the header at `args[0]`.
///
/// # Safety
///
/// `args[0]` points to a `msghdr` whose buffers are valid for writes.
unsafe fn run_recvmsg(fd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    // SAFETY: forwarded from the caller (the header and buffers the op owns).
    Outcome::of(unsafe { nb::recvmsg(fd, args[0] as *mut libc::msghdr, 0) })
}

/// `sendmsg` of the header at `args[0]` with the flags in `args[1]` (also the vectored
/// stream send, `SendV`).
///
/// # Safety
///
/// `args[0]` points to a `msghdr` whose buffers are valid for reads.
pub(super) unsafe fn run_sendmsg(fd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    // SAFETY: forwarded from the caller (the header and buffers the op owns).
    Outcome::of(unsafe { nb::sendmsg(fd, args[0] as *const libc::msghdr, args[1] as i32) })
}
