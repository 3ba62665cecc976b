//! `IORING_OP_WRITEV` from several owned buffers.

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
        })
    }
}

impl<B> Orphan for Writev<B> {}

// SAFETY: the iovec array and every buffer it names are heap memory owned here.
unsafe impl<B: IoBuf> OpKind for Writev<B> {
    type Output = (io::Result<usize>, Vec<B>);

    fn sqe(&mut self) -> Entry {
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
