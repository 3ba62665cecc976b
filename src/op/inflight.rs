//! Safe submission: [`Driver::submit`] and friends push an op and hand back an
//! [`InFlight`] that owns it — its buffers, fds and headers — until its last completion.
//!
//! The op's file proves, once, that its SQE and attempt point only into what it owns
//! (`OpKind` is an unsafe trait); the `InFlight` keeps that memory alive and put: dropped
//! before the completion, it abandons the op to the driver (an orphan that keeps the
//! memory until the last CQE, and a cancel). So code outside `driver/` and `op/` submits
//! ops without `unsafe`.

use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::OpKind;
use crate::driver::{Completion, Driven, Driver, OpHandler, OpKey};

/// An op in flight, owned here until its last completion.
///
/// A handler-driven op's completions go to its handler, which takes the op back with
/// [`InFlight::finish`] on the last one (or [`InFlight::complete`] for its output). A
/// future-driven one (`Op`) is polled with [`InFlight::poll`].
pub(crate) struct InFlight<T: OpKind> {
    op: Option<T>,
    key: OpKey,
    driver: Rc<Driver>,
}

impl Driver {
    /// Pushes `op`; its completions go to `handler.on_completion(tag, ..)` (several for a
    /// multishot op, the last without `F_MORE`). On failure the op comes back unpushed.
    pub(crate) fn submit<T: OpKind>(
        self: &Rc<Self>,
        op: T,
        handler: Rc<dyn OpHandler>,
        tag: u32,
    ) -> Result<InFlight<T>, (io::Error, T)> {
        self.submit_to_handler(op, handler, tag, false)
    }

    /// [`Driver::submit`] as a quiet op where the op is one ([`OpKind::quiet_result`])
    /// and quiet ops are available: submitted with `IOSQE_CQE_SKIP_SUCCESS`, so a success
    /// posts no CQE and the driver completes it with that result after the enter that
    /// submitted it (see `driver::quiet`). The enter that submits it may sleep through
    /// it: an owner that comes to need its completion before the loop's next real event
    /// says so with [`Driver::await_quiet`].
    pub(crate) fn submit_quiet<T: OpKind>(
        self: &Rc<Self>,
        op: T,
        handler: Rc<dyn OpHandler>,
        tag: u32,
    ) -> Result<InFlight<T>, (io::Error, T)> {
        self.submit_to_handler(op, handler, tag, true)
    }

    /// [`Driver::submit`] or, with `quiet`, [`Driver::submit_quiet`].
    fn submit_to_handler<T: OpKind>(
        self: &Rc<Self>,
        op: T,
        handler: Rc<dyn OpHandler>,
        tag: u32,
        quiet: bool,
    ) -> Result<InFlight<T>, (io::Error, T)> {
        let multishot = op.multishot();
        let driven = Driven::Handler {
            handler,
            tag,
            multishot,
        };
        self.submit_as(op, driven, quiet)
    }

    /// Pushes `op` for a future to poll ([`InFlight::poll`]).
    pub(crate) fn submit_future<T: OpKind>(
        self: &Rc<Self>,
        op: T,
    ) -> Result<InFlight<T>, (io::Error, T)> {
        self.submit_as(op, Driven::Future, false)
    }

    fn submit_as<T: OpKind>(
        self: &Rc<Self>,
        mut op: T,
        driven: Driven,
        quiet: bool,
    ) -> Result<InFlight<T>, (io::Error, T)> {
        let quiet = if quiet { op.quiet_result() } else { None };
        // SAFETY: OpKind's contract: the SQE and the attempt point only into memory `op`
        // owns (heap or static: moving `op` into the InFlight below does not move it), and
        // a quiet result is given only by ops that finish during their submission and
        // report anything short with a CQE. The InFlight keeps `op` until its last CQE,
        // or hands it to the driver as an orphan.
        let pushed = unsafe { self.push(&mut op, T::sqe, T::attempt, driven, quiet) };
        match pushed {
            Ok(key) => Ok(InFlight {
                op: Some(op),
                key,
                driver: self.clone(),
            }),
            Err(e) => Err((e, op)),
        }
    }
}

impl<T: OpKind> InFlight<T> {
    /// Asks the kernel to cancel the op; its completion (`ECANCELED`, or what it did
    /// before the cancel reached it) still comes.
    pub(crate) fn cancel(&self) {
        self.driver.cancel(self.key);
    }

    /// The op back, for its last completion (the kernel is done with its memory).
    pub(crate) fn finish(mut self) -> T {
        self.op
            .take()
            .expect("an InFlight holds its op until finished")
    }

    /// The op's output for its last completion.
    pub(crate) fn complete(self, completion: Completion) -> T::Output {
        self.finish().complete(completion.into_result())
    }

    /// Polls a future-driven op ([`Driver::submit_future`]): its output once its
    /// completion came (then the `InFlight` is spent: drop it).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<T::Output> {
        match self.driver.poll_op(self.key, cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(c) => {
                let op = self
                    .op
                    .take()
                    .expect("an op future was polled after it completed");
                Poll::Ready(op.complete(c.into_result()))
            }
        }
    }
}

impl<T: OpKind> Drop for InFlight<T> {
    fn drop(&mut self) {
        if let Some(op) = self.op.take() {
            // Still in flight (or completed but not finished): the driver keeps the op's
            // memory until its last CQE, or drops it now if that already came.
            self.driver.abandon(self.key, op);
        }
    }
}

impl<T: OpKind> std::fmt::Debug for InFlight<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight").field("key", &self.key).finish()
    }
}
