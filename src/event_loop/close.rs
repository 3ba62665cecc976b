//! Closing a loop, in a fixed order the suite relies on:
//!
//! 1. mark the loop closed (later `call_soon`, timers and tasks are dropped at once); in a
//!    forked child, let go of the parent's ring first (`Driver::release_after_fork`);
//! 2. cancel every task: their futures drop, and their ops are abandoned into the driver;
//! 3. drop the ready queue and the timers (outside their borrows: destructors may schedule
//!    again, and those calls see a closed loop), and the before-submit flushes;
//! 4. close the services up to [`Phase::Processes`] (open transports, signal handlers, the
//!    default executor, child processes), in phase order;
//! 5. close the cross-thread queue (what other threads queued is dropped; later pushes
//!    fail with [`Error::Closed`]);
//! 6. close the remaining services ([`Phase::Buffers`]: the buffer rings);
//! 7. shut the driver down: cancel what is in flight and wait, at most [`CLOSE_BOUND`],
//!    for the kernel to hand it back.

use std::time::Duration;

use super::services::Phase;
use super::{EventLoop, LoopInner, State};
use crate::error::Error;
use crate::task;

/// How long `close` waits for the kernel to hand back in-flight operations.
const CLOSE_BOUND: Duration = Duration::from_secs(2);

impl EventLoop {
    /// Closes the loop: drops every task, callback and timer, cancels every operation in
    /// the kernel and waits (bounded) for their completions, then releases the ring.
    /// Closing a running loop is an error; closing twice is fine.
    pub fn close(&self) -> Result<(), Error> {
        self.inner.close()
    }
}

impl LoopInner {
    pub(super) fn close(&self) -> Result<(), Error> {
        match self.state.get() {
            State::Closed => return Ok(()),
            State::Running => {
                return Err(Error::InvalidState("cannot close a running event loop"));
            }
            State::Idle => {}
        }
        self.state.set(State::Closed);
        if crate::sys::getpid() != self.pid {
            // A forked child: the parent's ring must not be touched here (see
            // `Driver::release_after_fork`); everything below then frees only our copies.
            self.driver.release_after_fork();
        }
        // Drop tasks first: their futures abandon their ops into the driver.
        task::cancel_all_tasks(self);
        let ready = std::mem::take(&mut *self.ready.borrow_mut());
        drop(ready);
        let timers = self.timers.borrow_mut().clear();
        drop(timers);
        self.flush_queue.borrow_mut().clear();
        while let Some(service) = self.services.next_to_close(Phase::Processes) {
            service.close();
        }
        drop(self.shared.close());
        while let Some(service) = self.services.next_to_close(Phase::Buffers) {
            service.close();
        }
        // What the kernel still holds past the bound (the driver's timer and wake-up
        // buffers included) the driver leaks rather than frees.
        self.driver.shutdown(CLOSE_BOUND);
        Ok(())
    }
}
