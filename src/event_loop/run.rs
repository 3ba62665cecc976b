//! Running the loop: `run_forever`, `run_until_complete`, `stop`, and one iteration
//! ([`LoopInner::run_once`], asyncio's `_run_once`; the steps are in the module docs of
//! `event_loop`).
//!
//! The hot path of the crate: an iteration makes no allocation (its scratch vectors are
//! kept in the loop and reused) and no syscall beyond the one enter it decides on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Instant;

use super::handle::CallbackCell;
use super::{
    EventLoop, ExceptionContext, Flush, LoopInner, POLL_INTERVAL, Ready, RemoteItem, State, current,
};
use crate::driver::Wait;
use crate::error::Error;
use crate::task;

impl EventLoop {
    /// Runs until [`EventLoop::stop`] is called.
    pub fn run_forever(&self) -> Result<(), Error> {
        let _guard = self.inner.start_running()?;
        let result = loop {
            if let Err(e) = self.inner.run_once() {
                break Err(e);
            }
            if self.inner.stopping.get() {
                break Ok(());
            }
        };
        self.inner.stopping.set(false);
        self.inner.state.set(State::Idle);
        result
    }

    /// Runs `fut` as a task until it completes and returns its output.
    ///
    /// Errors: [`Error::InvalidState`] when called inside a running loop or when the loop
    /// was stopped before the future completed; [`Error::Closed`] on a closed loop. A panic
    /// in the future propagates to the caller, as an exception would in asyncio.
    pub fn run_until_complete<F>(&self, fut: F) -> Result<F::Output, Error>
    where
        F: std::future::Future + 'static,
    {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        // Refuse first: a future handed to a loop that cannot run it must not be left
        // behind as a task that runs later (asyncio checks before `ensure_future` too).
        let _guard = self.inner.start_running()?;
        let handle = self.create_task(fut);
        let result = loop {
            if let Err(e) = self.inner.run_once() {
                break Err(e);
            }
            if handle.is_finished() {
                break Ok(());
            }
            if self.inner.stopping.get() {
                break Err(Error::InvalidState(
                    "event loop stopped before the future completed",
                ));
            }
        };
        self.inner.stopping.set(false);
        self.inner.state.set(State::Idle);
        result?;
        handle.take_output_resuming_panic()
    }

    /// Stops the loop after the current iteration; before `run_forever`, the next run
    /// does one iteration and returns.
    pub fn stop(&self) {
        self.inner.stopping.set(true);
    }

    /// Queues `flush` to run once just before the next submit (the loop's before-submit
    /// hook: transports send every write of an iteration together). Costs a push; the
    /// queue is drained in order at the start of the next iteration.
    pub(crate) fn schedule_flush(&self, flush: Rc<dyn Flush>) {
        self.inner.flush_queue.borrow_mut().push(flush);
    }
}

impl LoopInner {
    fn start_running(self: &Rc<Self>) -> Result<current::RunningGuard, Error> {
        match self.state.get() {
            State::Closed => return Err(Error::Closed),
            State::Running => {
                return Err(Error::InvalidState("this event loop is already running"));
            }
            State::Idle => {}
        }
        if crate::sys::getpid() != self.pid {
            return Err(Error::InvalidState(
                "this event loop was created before fork(); create a new loop in the child",
            ));
        }
        let guard = current::enter_running(self)?;
        self.state.set(State::Running);
        Ok(guard)
    }

    /// One iteration (see the module docs).
    pub(super) fn run_once(self: &Rc<Self>) -> Result<(), Error> {
        self.iterations.set(self.iterations.get() + 1);
        self.run_flushes();
        let busy = !self.ready.borrow().is_empty() || self.stopping.get();
        let next_deadline = self.timers.borrow_mut().next_deadline();
        let now = Instant::now();
        let mut deadline = None;
        let wait = if busy || next_deadline.is_some_and(|d| d <= now) || self.shared.has_pending() {
            let polls = self.since_poll.get() + 1;
            if polls >= POLL_INTERVAL {
                self.since_poll.set(0);
                Wait::Poll
            } else {
                self.since_poll.set(polls);
                Wait::IfSubmitting
            }
        } else {
            self.since_poll.set(0);
            deadline = next_deadline;
            Wait::Block
        };

        let mut cqes = std::mem::take(&mut *self.cqes.borrow_mut());
        let result = if wait == Wait::Block {
            let result = if self.shared.prepare_sleep() {
                self.driver.submit_and_reap(Wait::Block, deadline, &mut cqes)
            } else {
                self.driver.submit_and_reap(Wait::Poll, deadline, &mut cqes)
            };
            self.shared.woke();
            result
        } else {
            self.driver.submit_and_reap(wait, None, &mut cqes)
        };
        if let Err(e) = result {
            *self.cqes.borrow_mut() = cqes;
            return Err(e.into());
        }
        for (user_data, completion) in cqes.drain(..) {
            self.dispatch(user_data, completion);
        }
        *self.cqes.borrow_mut() = cqes;

        self.drain_remote();
        if self.timers.borrow().len() > 0 {
            let mut due = std::mem::take(&mut *self.due.borrow_mut());
            self.timers
                .borrow_mut()
                .take_due(Instant::now(), |cell| due.push(cell));
            for cell in due.drain(..) {
                if cell.runs_when_due() {
                    cell.run();
                } else {
                    self.push_ready(Ready::Callback(cell));
                }
            }
            *self.due.borrow_mut() = due;
        }

        let ntodo = self.ready.borrow().len();
        for _ in 0..ntodo {
            let Some(item) = self.ready.borrow_mut().pop_front() else {
                break;
            };
            self.run_ready(item);
        }
        Ok(())
    }

    fn run_ready(self: &Rc<Self>, item: Ready) {
        match item {
            Ready::Callback(cell) => {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| cell.run())) {
                    self.report(ExceptionContext {
                        message: "a callback panicked".into(),
                        error: Some(Error::from_panic(payload)),
                    });
                }
            }
            Ready::Task { index, generation } => task::run_task(self, index, generation),
            Ready::Io {
                handler,
                tag,
                completion,
            } => {
                if let Err(payload) =
                    catch_unwind(AssertUnwindSafe(|| handler.on_completion(tag, completion)))
                {
                    self.report(ExceptionContext {
                        message: "an I/O completion callback panicked".into(),
                        error: Some(Error::from_panic(payload)),
                    });
                }
            }
        }
    }

    fn run_flushes(&self) {
        if self.flush_queue.borrow().is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut *self.flush_batch.borrow_mut());
        std::mem::swap(&mut batch, &mut *self.flush_queue.borrow_mut());
        for f in batch.drain(..) {
            f.flush();
        }
        *self.flush_batch.borrow_mut() = batch;
    }

    fn drain_remote(&self) {
        if !self.shared.has_pending() {
            return;
        }
        let mut items = std::mem::take(&mut *self.remote_items.borrow_mut());
        self.shared.drain(&mut items);
        for item in items.drain(..) {
            match item {
                RemoteItem::Callback(f) => {
                    let cell = CallbackCell::new_runnable(f);
                    self.push_ready(Ready::Callback(cell));
                }
                RemoteItem::Wake(header) => self.push_ready(header.ready_entry()),
            }
        }
        *self.remote_items.borrow_mut() = items;
    }
}
