//! `IORING_OP_READV` into several owned buffers.

use std::io;

use io_uring::{opcode, squeue::Entry, types};

use super::{OpKind, check_iov_count, iovecs};
use crate::buf::IoBufMut;
use crate::driver::Orphan;
use crate::fd::SharedFd;

/// A vectored read: fills `bufs` in order.
pub(crate) struct Readv<B> {
    fd: SharedFd,
    bufs: Vec<B>,
    iovecs: Vec<libc::iovec>,
    offset: u64,
}

impl<B: IoBufMut> Readv<B> {
    pub(crate) fn new(
        fd: SharedFd,
        mut bufs: Vec<B>,
        offset: u64,
    ) -> Result<Self, (io::Error, Vec<B>)> {
        if let Err(e) = check_iov_count(bufs.len()) {
            return Err((e, bufs));
        }
        let iovecs = iovecs(&mut bufs, |b| libc::iovec {
            iov_base: b.stable_mut_ptr().cast(),
            iov_len: b.bytes_total(),
        });
        Ok(Readv {
            fd,
            bufs,
            iovecs,
            offset,
        })
    }
}

impl<B> Orphan for Readv<B> {}

// SAFETY: the iovec array and every buffer it names are heap memory owned here.
unsafe impl<B: IoBufMut> OpKind for Readv<B> {
    type Output = (io::Result<usize>, Vec<B>);

    fn sqe(&mut self) -> Entry {
        opcode::Readv::new(
            types::Fd(self.fd.raw()),
            self.iovecs.as_ptr(),
            self.iovecs.len() as u32,
        )
        .offset(self.offset)
        .build()
    }

    fn complete(mut self, result: io::Result<u32>) -> Self::Output {
        let result = result.map(|n| {
            let mut left = n as usize;
            for buf in &mut self.bufs {
                let filled = left.min(buf.bytes_total());
                // SAFETY: the kernel filled the buffers in order; this one got `filled`.
                unsafe { buf.set_init(filled) };
                left -= filled;
            }
            n as usize
        });
        (result, self.bufs)
    }
}
