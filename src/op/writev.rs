//! `IORING_OP_WRITEV` from several owned buffers; on sockets `IORING_OP_SENDMSG` with the
//! same iovecs and `MSG_NOSIGNAL`, since a vectored write to a closed socket raises
//! `SIGPIPE` (fatal where it has its default action) and `sendmsg` can refuse to.

use std::io;

use io_uring::{opcode, squeue::Entry, types};

use super::{OpKind, check_iov_count, iovecs};
use crate::buf::IoBuf;
use crate::driver::Orphan;
use crate::fd::SharedFd;

/// A vectored write of every buffer's initialized bytes, in order.
pub(crate) struct Writev<B> {
    fd: SharedFd,
    bufs: Vec<B>,
    iovecs: Vec<libc::iovec>,
    offset: u64,
    /// Sockets: the header naming `iovecs`, sent with `MSG_NOSIGNAL`.
    socket_hdr: Option<Box<libc::msghdr>>,
}

impl<B: IoBuf> Writev<B> {
    pub(crate) fn new(
        fd: SharedFd,
        mut bufs: Vec<B>,
        offset: u64,
    ) -> Result<Self, (io::Error, Vec<B>)> {
        if let Err(e) = check_iov_count(bufs.len()) {
            return Err((e, bufs));
        }
        let iovecs = iovecs(&mut bufs, |b| libc::iovec {
            iov_base: b.stable_ptr() as *mut libc::c_void,
            iov_len: b.bytes_init(),
        });
        Ok(Writev {
            fd,
            bufs,
            iovecs,
            offset,
            socket_hdr: None,
        })
    }

    /// A vectored send on a connected socket: a closed peer is an `EPIPE`, never a
    /// `SIGPIPE`.
    pub(crate) fn new_socket(fd: SharedFd, bufs: Vec<B>) -> Result<Self, (io::Error, Vec<B>)> {
        let mut w = Self::new(fd, bufs, 0)?;
        // SAFETY: msghdr is plain old data; all-zero is an empty header (no address).
        let mut hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        // The iovec array is heap memory owned by `w`, never resized: it stays put.
        hdr.msg_iov = w.iovecs.as_mut_ptr();
        hdr.msg_iovlen = w.iovecs.len() as _;
        w.socket_hdr = Some(hdr);
        Ok(w)
    }
}

impl<B> Orphan for Writev<B> {}

// SAFETY: the iovec array, the socket header and every buffer they name are heap memory
// owned here.
unsafe impl<B: IoBuf> OpKind for Writev<B> {
    type Output = (io::Result<usize>, Vec<B>);

    fn sqe(&mut self) -> Entry {
        if let Some(hdr) = &self.socket_hdr {
            return opcode::SendMsg::new(types::Fd(self.fd.raw()), &**hdr)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build();
        }
        opcode::Writev::new(
            types::Fd(self.fd.raw()),
            self.iovecs.as_ptr(),
            self.iovecs.len() as u32,
        )
        .offset(self.offset)
        .build()
    }

    fn complete(self, result: io::Result<u32>) -> Self::Output {
        (result.map(|n| n as usize), self.bufs)
    }
}
