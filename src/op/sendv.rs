//! `IORING_OP_SENDMSG` of several owned buffers on a connected socket, with
//! `MSG_NOSIGNAL`: the vectored write for sockets (`IORING_OP_WRITEV` takes no send flags,
//! so a closed peer would raise SIGPIPE where the process has not ignored it).

use std::io;

use io_uring::{opcode, squeue::Entry, types};

use super::{OpKind, check_iov_count, iovecs};
use crate::buf::IoBuf;
use crate::driver::{Attempt, Interest, Orphan};
use crate::fd::SharedFd;

/// A vectored send of every buffer's initialized bytes, in order.
pub(crate) struct SendV<B> {
    fd: SharedFd,
    bufs: Vec<B>,
    /// The header points into `iovecs`; both are heap memory that stays put while the op
    /// is in flight (the `Vec`'s buffer does not move when the struct does).
    hdr: Box<libc::msghdr>,
    iovecs: Vec<libc::iovec>,
}

impl<B: IoBuf> SendV<B> {
    pub(crate) fn new(fd: SharedFd, mut bufs: Vec<B>) -> Result<Self, (io::Error, Vec<B>)> {
        if let Err(e) = check_iov_count(bufs.len()) {
            return Err((e, bufs));
        }
        let mut iovecs = iovecs(&mut bufs, |b| libc::iovec {
            iov_base: b.stable_ptr() as *mut libc::c_void,
            iov_len: b.bytes_init(),
        });
        // SAFETY: msghdr is plain old data; all-zero is a valid (empty) header.
        let mut hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        hdr.msg_iov = iovecs.as_mut_ptr();
        hdr.msg_iovlen = iovecs.len();
        Ok(SendV {
            fd,
            bufs,
            hdr,
            iovecs,
        })
    }
}

impl<B> Orphan for SendV<B> {}

// SAFETY: the header, the iovec array and every buffer it names are heap memory owned
// here, alive until the op's completion.
unsafe impl<B: IoBuf> OpKind for SendV<B> {
    type Output = (io::Result<usize>, Vec<B>);

    fn sqe(&mut self) -> Entry {
        debug_assert_eq!(self.hdr.msg_iov, self.iovecs.as_mut_ptr());
        opcode::SendMsg::new(types::Fd(self.fd.raw()), &*self.hdr)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let hdr: *const libc::msghdr = &*self.hdr;
        let flags = libc::MSG_NOSIGNAL as u64;
        Some(Attempt::new(
            self.fd.raw(),
            Interest::Write,
            [hdr as u64, flags, 0, 0],
            super::msg::run_sendmsg,
        ))
    }

    fn complete(self, result: io::Result<u32>) -> Self::Output {
        (result.map(|n| n as usize), self.bufs)
    }
}
