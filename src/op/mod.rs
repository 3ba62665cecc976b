//! Operations: one small file per SQE kind. Each says how to build its SQE from the
//! memory it owns and how a CQE becomes its output; [`Op`] does the rest (lazy submit on
//! first poll, waiting, and handing its memory to the driver if dropped in flight).
//!
//! The driver never knows op types: it sees an SQE, a slot, and — for a dropped op — an
//! [`Orphan`] to keep alive until the last CQE.

mod accept;
mod close;
mod connect;
mod msg;
mod nop;
mod poll;
mod read;
mod readv;
mod recv;
mod salvage;
mod send;
mod sendv;
mod waitid;
mod write;
mod writev;

pub(crate) use accept::Accept;
pub(crate) use close::Close;
pub(crate) use connect::Connect;
pub(crate) use msg::{MsgParts, Received, RecvMsg, SendMsg};
pub(crate) use nop::Nop;
pub(crate) use poll::PollAdd;
pub(crate) use read::Read;
pub(crate) use readv::Readv;
pub(crate) use recv::Recv;
pub(crate) use salvage::SalvagingRead;
pub(crate) use send::Send;
pub(crate) use sendv::SendV;
pub(crate) use waitid::WaitId;
pub(crate) use write::Write;
pub(crate) use writev::Writev;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use io_uring::squeue::Entry;

use crate::driver::{Driven, Driver, OpKey, Orphan};

/// What an operation owns and how it maps to and from the ring.
///
/// # Safety
///
/// Every pointer placed in the SQE by [`OpKind::sqe`] must point into memory owned by
/// `self` (heap or static, so that moving `self` does not move it) or be otherwise valid
/// until the op's last CQE.
pub(crate) unsafe trait OpKind: Orphan + Unpin + 'static {
    /// What the op's future resolves to.
    type Output;
    /// Builds the SQE (without `user_data`; the driver sets it).
    fn sqe(&mut self) -> Entry;
    /// Turns the CQE's result (a non-negative count or fd, or the errno) into the output.
    fn complete(self, result: io::Result<u32>) -> Self::Output;
}

/// The future of one single-shot operation.
pub(crate) struct Op<T: OpKind> {
    data: Option<T>,
    key: Option<OpKey>,
    driver: Option<Rc<Driver>>,
}

impl<T: OpKind> Op<T> {
    /// An op that is submitted when first polled, on the running loop's ring.
    pub(crate) fn new(data: T) -> Self {
        Op {
            data: Some(data),
            key: None,
            driver: None,
        }
    }
}

impl<T: OpKind> Op<T> {
    /// Asks the kernel to cancel the op if it is in flight; the future still resolves
    /// (with `ECANCELED`, or with what the op did before the cancel reached it).
    pub(crate) fn cancel(&self) {
        if let (Some(key), Some(driver)) = (self.key, self.driver.as_ref()) {
            driver.cancel(key);
        }
    }

    /// Whether the op's SQE was pushed (it is in the kernel until it resolves).
    pub(crate) fn submitted(&self) -> bool {
        self.key.is_some()
    }
}

impl<T: OpKind> Future for Op<T> {
    type Output = T::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let this = &mut *self;
        let Some(key) = this.key else {
            let data = this
                .data
                .as_mut()
                .expect("an op future was polled after it completed");
            let driver = match crate::event_loop::current_driver() {
                Ok(d) => d,
                Err(e) => return Poll::Ready(this.data.take().unwrap().complete(Err(e))),
            };
            let sqe = data.sqe();
            // SAFETY: OpKind's contract: the SQE points only into `data`, which stays in
            // this Op until the CQE or moves to the driver as an orphan on drop.
            match unsafe { driver.push_op(sqe, Driven::Future) } {
                Ok(key) => {
                    this.key = Some(key);
                    this.driver = Some(driver);
                    // Register the waker now; the CQE comes at the earliest next iteration.
                    return match this.driver.as_ref().unwrap().poll_op(key, cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(c) => {
                            this.key = None;
                            Poll::Ready(this.data.take().unwrap().complete(c.into_result()))
                        }
                    };
                }
                Err(e) => return Poll::Ready(this.data.take().unwrap().complete(Err(e))),
            }
        };
        let driver = this.driver.as_ref().expect("a submitted op has a driver");
        match driver.poll_op(key, cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(c) => {
                this.key = None;
                let data = this.data.take().expect("op data present until completion");
                Poll::Ready(data.complete(c.into_result()))
            }
        }
    }
}

impl<T: OpKind> Drop for Op<T> {
    fn drop(&mut self) {
        if let (Some(key), Some(data), Some(driver)) =
            (self.key.take(), self.data.take(), self.driver.as_ref())
        {
            driver.abandon(key, Box::new(data));
        }
    }
}

/// The offset io_uring reads as "the file's current position" (and the only valid one
/// for pipes and sockets).
pub(crate) const CURRENT_POSITION: u64 = u64::MAX;

/// Builds the iovec array for a vectored op over owned buffers.
pub(crate) fn iovecs<B>(bufs: &mut [B], f: impl Fn(&mut B) -> libc::iovec) -> Vec<libc::iovec> {
    bufs.iter_mut().map(f).collect()
}

/// Checks that an iovec count fits the kernel's limit.
pub(crate) fn check_iov_count(n: usize) -> io::Result<u32> {
    if n > libc::UIO_MAXIOV as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{n} buffers exceed the kernel's limit of {} per call",
                libc::UIO_MAXIOV
            ),
        ));
    }
    Ok(n as u32)
}
