//! Scheduled callbacks: [`Handle`] for `call_soon`, [`TimerHandle`] for `call_later`/`call_at`.
//!
//! A callback and its cancelled flag share one allocation (`Rc<Cell<F>>` behind a trait
//! object), so scheduling costs one allocation and the ready queue holds a pointer.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::Instant;

/// A callback waiting in the ready queue or the timer heap.
pub(crate) trait Runnable {
    /// Runs the callback unless it was cancelled; a second call does nothing.
    fn run(&self);
    /// Whether `cancel` was called.
    fn is_cancelled(&self) -> bool;
    /// Cancels: the callback will not run and is dropped now.
    fn cancel(&self);
    /// Timers only: run at once when due (it just wakes a task) instead of queueing.
    fn runs_when_due(&self) -> bool {
        false
    }
}

pub(crate) struct CallbackCell<F> {
    cancelled: Cell<bool>,
    callback: Cell<Option<F>>,
}

impl<F: FnOnce() + 'static> CallbackCell<F> {
    pub(crate) fn new_runnable(f: F) -> Rc<dyn Runnable> {
        Rc::new(CallbackCell {
            cancelled: Cell::new(false),
            callback: Cell::new(Some(f)),
        })
    }
}

impl<F: FnOnce()> Runnable for CallbackCell<F> {
    fn run(&self) {
        if self.cancelled.get() {
            return;
        }
        if let Some(f) = self.callback.take() {
            f();
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }

    fn cancel(&self) {
        self.cancelled.set(true);
        drop(self.callback.take());
    }
}

/// A callback scheduled with [`EventLoop::call_soon`](crate::EventLoop::call_soon).
///
/// Dropping the handle does not cancel the callback; [`Handle::cancel`] does.
#[derive(Clone)]
pub struct Handle {
    pub(crate) cell: Rc<dyn Runnable>,
}

impl Handle {
    /// Cancels the callback; it will not run. Cancelling twice, or after it ran, is fine.
    pub fn cancel(&self) {
        self.cell.cancel();
    }

    /// Whether [`Handle::cancel`] was called.
    pub fn cancelled(&self) -> bool {
        self.cell.is_cancelled()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("cancelled", &self.cancelled())
            .finish()
    }
}

/// A callback scheduled with [`EventLoop::call_later`](crate::EventLoop::call_later) or
/// [`EventLoop::call_at`](crate::EventLoop::call_at).
#[derive(Clone)]
pub struct TimerHandle {
    pub(crate) cell: Rc<dyn Runnable>,
    pub(crate) when: Instant,
    /// The loop's count of cancelled timers still in its heap (drives purging).
    pub(crate) cancelled_in_heap: Rc<Cell<usize>>,
    pub(crate) in_heap: Rc<Cell<bool>>,
}

impl TimerHandle {
    /// Cancels the timer; its callback will not run and is dropped now.
    pub fn cancel(&self) {
        if !self.cell.is_cancelled() {
            self.cell.cancel();
            if self.in_heap.get() {
                self.cancelled_in_heap.set(self.cancelled_in_heap.get() + 1);
            }
        }
    }

    /// Whether [`TimerHandle::cancel`] was called.
    pub fn cancelled(&self) -> bool {
        self.cell.is_cancelled()
    }

    /// When the callback is due, on the loop's clock ([`EventLoop::time`](crate::EventLoop::time)).
    pub fn when(&self) -> Instant {
        self.when
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("when", &self.when)
            .field("cancelled", &self.cancelled())
            .finish()
    }
}
