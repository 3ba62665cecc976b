//! Stream reads that lose no byte to cancellation.
//!
//! A read dropped while in flight (by [`timeout`](crate::timeout), a cancelled task, a
//! `select`) may still complete with data: the kernel took the bytes from the stream
//! before the cancel reached it. The orphaned op then hands them to its fd
//! ([`SharedFd::salvage`]); [`SalvagingRead`] gives them out first, keeps them ahead of
//! bytes a newer read brings, and wakes a read that waits in the kernel meanwhile (it
//! cancels its op and returns the salvaged bytes).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{Op, OpKind};
use crate::buf::IoBufMut;
use crate::fd::SharedFd;

/// The first `n` bytes the kernel wrote into an orphaned buffer.
pub(super) fn written<B: IoBufMut>(buf: &mut B, n: usize) -> Vec<u8> {
    let n = n.min(buf.bytes_total());
    // SAFETY: the kernel wrote n bytes at the start of the buffer (its CQE says so), and
    // n is within the buffer.
    unsafe { std::slice::from_raw_parts(buf.stable_mut_ptr().cast_const(), n) }.to_vec()
}

/// A stream read: salvaged bytes first, else an op (`make`), merged with salvaged bytes
/// that arrive while it is in flight.
pub(crate) struct SalvagingRead<B, T: OpKind> {
    fd: SharedFd,
    make: fn(SharedFd, B) -> T,
    buf: Option<B>,
    op: Option<Op<T>>,
    cancel_sent: bool,
}

impl<B, T: OpKind> SalvagingRead<B, T> {
    pub(crate) fn new(fd: SharedFd, buf: B, make: fn(SharedFd, B) -> T) -> Self {
        SalvagingRead {
            fd,
            make,
            buf: Some(buf),
            op: None,
            cancel_sent: false,
        }
    }
}

impl<B, T> Future for SalvagingRead<B, T>
where
    B: IoBufMut,
    T: OpKind<Output = (io::Result<usize>, B)>,
{
    type Output = (io::Result<usize>, B);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            let Some(op) = this.op.as_mut() else {
                let mut buf = this.buf.take().expect("polled after completion");
                if this.fd.has_salvaged() {
                    let n = this.fd.take_salvaged(&mut buf);
                    return Poll::Ready((Ok(n), buf));
                }
                this.op = Some(Op::new((this.make)(this.fd.clone(), buf)));
                this.cancel_sent = false;
                continue;
            };
            match Pin::new(&mut *op).poll(cx) {
                Poll::Ready((res, mut buf)) => {
                    this.op = None;
                    if !this.fd.has_salvaged() {
                        if this.cancel_sent
                            && matches!(&res, Err(e) if e.raw_os_error() == Some(libc::ECANCELED))
                        {
                            // Our own cancel, and another read took the salvaged bytes:
                            // read again.
                            this.buf = Some(buf);
                            continue;
                        }
                        return Poll::Ready((res, buf));
                    }
                    // Salvaged bytes came earlier on the stream than what this op read.
                    if let Ok(n) = res {
                        let fresh = written(&mut buf, n);
                        this.fd.append_salvaged(&fresh);
                    }
                    let n = this.fd.take_salvaged(&mut buf);
                    return Poll::Ready((Ok(n), buf));
                }
                Poll::Pending => {
                    if this.fd.has_salvaged() && op.submitted() && !this.cancel_sent {
                        // Bytes wait here while this read waits in the kernel: end it.
                        op.cancel();
                        this.cancel_sent = true;
                    } else {
                        this.fd.wait_for_salvage(cx.waker());
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
