//! Operations: one small file per op kind. Each says how to build its SQE from the memory
//! it owns (io_uring), how to attempt it as a non-blocking syscall with a readiness
//! interest (the epoll engine, see `driver::attempt`), and how a CQE becomes its output.
//! [`InFlight`] owns a submitted op until its last completion; [`Op`] is the async face
//! (lazy submit on first poll, waiting, and handing its memory to the driver if dropped
//! in flight).
//!
//! The driver never knows op types: it sees an SQE or an attempt, a slot, and — for a
//! dropped op — an [`Orphan`] to keep alive until the last CQE.

mod accept;
mod accepts;
mod close;
mod connect;
mod fallocate;
mod fsync;
mod ftruncate;
mod inflight;
mod linkat;
mod mkdirat;
mod msg;
mod nop;
mod open;
mod poll;
mod read;
mod readv;
mod recv;
mod recv_multi;
mod renameat;
mod salvage;
mod send;
mod sendv;
mod statx;
mod symlinkat;
mod unlinkat;
mod waitid;
mod write;
mod writev;

pub(crate) use accept::Accept;
pub(crate) use accepts::Accepts;
pub(crate) use close::Close;
pub(crate) use connect::Connect;
pub(crate) use fallocate::Fallocate;
pub(crate) use fsync::Fsync;
pub(crate) use ftruncate::Ftruncate;
pub(crate) use inflight::InFlight;
pub(crate) use linkat::LinkAt;
pub(crate) use mkdirat::MkDirAt;
pub(crate) use msg::{MsgParts, Received, RecvMsg, SendMsg};
pub(crate) use nop::Nop;
pub(crate) use open::OpenAt;
pub(crate) use poll::PollAdd;
pub(crate) use read::Read;
pub(crate) use readv::Readv;
pub(crate) use recv::Recv;
pub(crate) use recv_multi::{RecvMsgMulti, RecvMulti, parse_datagram, recvmsg_multi_buffer};
pub(crate) use renameat::RenameAt;
pub(crate) use salvage::SalvagingRead;
pub(crate) use send::Send;
pub(crate) use sendv::SendV;
pub(crate) use statx::Statx;
pub(crate) use symlinkat::SymlinkAt;
pub(crate) use unlinkat::UnlinkAt;
pub(crate) use waitid::WaitId;
pub(crate) use write::Write;
pub(crate) use writev::Writev;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use io_uring::opcode;
use io_uring::squeue::Entry;

use crate::driver::{Attempt, Driver, Orphan};

/// What an operation owns and how it maps to and from the engines.
///
/// # Safety
///
/// Every pointer placed in the SQE by [`OpKind::sqe`], or in the words of the attempt
/// [`OpKind::attempt`] returns, must point into memory owned by `self` (heap or static,
/// so that moving `self` does not move it) or be otherwise valid until the op's last
/// completion; the attempt's `run` must touch nothing else. [`OpKind::quiet_result`] may
/// be `Some` only for an op that finishes during its submission and reports anything but
/// that result with a CQE (see `driver::quiet`).
pub(crate) unsafe trait OpKind: Orphan + Unpin + 'static {
    /// What the op's future resolves to.
    type Output;
    /// Builds the SQE (without `user_data`; the driver sets it).
    fn sqe(&mut self) -> Entry;
    /// How the epoll engine runs it; `None` where it cannot (it then completes with
    /// `EINVAL`, as an unsupported opcode does on an old kernel).
    fn attempt(&mut self) -> Option<Attempt>;
    /// Whether completions keep coming until one without `IORING_CQE_F_MORE`.
    fn multishot(&self) -> bool {
        false
    }
    /// The result its success has, if it may be submitted quiet (see the trait's safety).
    fn quiet_result(&self) -> Option<i32> {
        None
    }
    /// Turns the CQE's result (a non-negative count or fd, or the errno) into the output.
    fn complete(self, result: io::Result<u32>) -> Self::Output;
}

/// Whether ops with this opcode have an attempt (run on the epoll engine).
pub(crate) fn runs_on_epoll(code: u8) -> bool {
    [
        opcode::Nop::CODE,
        opcode::Read::CODE,
        opcode::Write::CODE,
        opcode::Readv::CODE,
        opcode::Writev::CODE,
        opcode::Close::CODE,
        opcode::Accept::CODE,
        opcode::Connect::CODE,
        opcode::Send::CODE,
        opcode::Recv::CODE,
        opcode::SendMsg::CODE,
        opcode::RecvMsg::CODE,
        opcode::PollAdd::CODE,
        // File and path ops: run on the engine's pool threads (`Interest::Blocking`).
        opcode::OpenAt::CODE,
        opcode::Fsync::CODE,
        opcode::Statx::CODE,
        opcode::Fallocate::CODE,
        opcode::Ftruncate::CODE,
        opcode::UnlinkAt::CODE,
        opcode::RenameAt::CODE,
        opcode::MkDirAt::CODE,
        opcode::SymlinkAt::CODE,
        opcode::LinkAt::CODE,
    ]
    .contains(&code)
}

/// The future of one single-shot operation.
pub(crate) struct Op<T: OpKind> {
    state: State<T>,
}

enum State<T: OpKind> {
    /// Not pushed yet; pushed on first poll.
    New(T),
    InFlight(InFlight<T>),
    Done,
}

impl<T: OpKind> Op<T> {
    /// An op that is submitted when first polled, on the running loop's ring.
    pub(crate) fn new(data: T) -> Self {
        Op {
            state: State::New(data),
        }
    }
}

impl<T: OpKind> Op<T> {
    /// Asks the kernel to cancel the op if it is in flight; the future still resolves
    /// (with `ECANCELED`, or with what the op did before the cancel reached it).
    pub(crate) fn cancel(&self) {
        if let State::InFlight(op) = &self.state {
            op.cancel();
        }
    }

    /// Whether the op was pushed (it is in the kernel until it resolves).
    pub(crate) fn submitted(&self) -> bool {
        matches!(self.state, State::InFlight(_))
    }
}

fn submit_to<T: OpKind>(driver: io::Result<Rc<Driver>>, op: T) -> Result<InFlight<T>, T::Output> {
    match driver {
        Ok(d) => d.submit_future(op).map_err(|(e, op)| op.complete(Err(e))),
        Err(e) => Err(op.complete(Err(e))),
    }
}

impl<T: OpKind> Future for Op<T> {
    type Output = T::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let this = &mut *self;
        if let State::New(_) = this.state {
            let State::New(op) = std::mem::replace(&mut this.state, State::Done) else {
                unreachable!()
            };
            match submit_to(crate::event_loop::current_driver(), op) {
                Ok(in_flight) => this.state = State::InFlight(in_flight),
                Err(output) => return Poll::Ready(output),
            }
        }
        let State::InFlight(in_flight) = &mut this.state else {
            panic!("an op future was polled after it completed");
        };
        match in_flight.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(output) => {
                this.state = State::Done;
                Poll::Ready(output)
            }
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
