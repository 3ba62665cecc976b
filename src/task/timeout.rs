//! asyncio 3.11's `Timeout`: a deadline that can be moved while the code under it runs.
//!
//! [`timeout`](crate::timeout) and [`timeout_at`](crate::timeout_at) fix their deadline
//! when called. A [`Timeout`] is a handle (cheap to clone) on a deadline that the body it
//! guards, or anyone holding a clone, may [`reschedule`](Timeout::reschedule) — earlier,
//! later, or to `None` (never) — and that says afterwards whether it [`expired`](Timeout::expired).
//! [`Timeout::wrap`] is asyncio's `async with cm:`: the future it returns runs the body
//! and ends with [`Error::Timeout`] when the deadline passes first, dropping the body
//! (Rust's cancellation: its destructors run).
//!
//! Its states are asyncio's: created → entered (by the first poll of `wrap`'s future) →
//! expired, or finished (the body completed, or the wrapped future was dropped). A
//! `Timeout` is entered once; rescheduling one not entered, or already over, is an
//! [`Error::InvalidState`].
//!
//! The first poll always runs the body to its first suspension, even with a deadline
//! already passed (asyncio schedules its cancellation with `call_soon`); after that the
//! deadline is checked before the body is polled, so a nested `Timeout` with the same
//! deadline is dropped by the outer one, which alone reports [`Error::Timeout`] — as
//! asyncio's "only the topmost context manager raises".

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::combinators::{Sleep, sleep_until};
use crate::error::Error;
use crate::event_loop::deadline_after;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    Entered,
    Expired,
    Finished,
}

struct State {
    when: Cell<Option<Instant>>,
    phase: Cell<Phase>,
    /// The waker of the wrapped future's last poll: a reschedule wakes it to re-arm.
    waker: RefCell<Option<Waker>>,
}

/// A reschedulable deadline, asyncio's `asyncio.Timeout`; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use ringloop::{Timeout, sleep};
///
/// ringloop::run(async {
///     let cm = Timeout::after(Some(Duration::from_millis(5)));
///     let inner = cm.clone();
///     let r = cm
///         .wrap(async move {
///             // More time is needed: push the deadline back.
///             inner.reschedule(Some(Instant::now() + Duration::from_secs(5))).unwrap();
///             sleep(Duration::from_millis(20)).await;
///             "done"
///         })
///         .await;
///     assert_eq!(r.unwrap(), "done");
///     assert!(!cm.expired());
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Timeout {
    state: Rc<State>,
}

impl Timeout {
    /// asyncio's `timeout(delay)`: a deadline `delay` from now, or none for `None`.
    pub fn after(delay: Option<Duration>) -> Timeout {
        Timeout::at(delay.map(deadline_after))
    }

    /// asyncio's `timeout_at(when)`: a deadline on the loop's clock, or none for `None`.
    pub fn at(when: Option<Instant>) -> Timeout {
        Timeout {
            state: Rc::new(State {
                when: Cell::new(when),
                phase: Cell::new(Phase::Created),
                waker: RefCell::new(None),
            }),
        }
    }

    /// The current deadline (`None`: never).
    pub fn when(&self) -> Option<Instant> {
        self.state.when.get()
    }

    /// Moves the deadline (`None`: never). Only while entered: before the wrapped future
    /// first runs, and after it expired or finished, it is an [`Error::InvalidState`].
    pub fn reschedule(&self, when: Option<Instant>) -> Result<(), Error> {
        match self.state.phase.get() {
            Phase::Created => Err(Error::InvalidState("the Timeout has not been entered")),
            Phase::Expired => Err(Error::InvalidState("the Timeout has expired")),
            Phase::Finished => Err(Error::InvalidState("the Timeout has finished")),
            Phase::Entered => {
                self.state.when.set(when);
                if let Some(w) = self.state.waker.borrow().as_ref() {
                    w.wake_by_ref();
                }
                Ok(())
            }
        }
    }

    /// Whether the deadline passed while the body ran (and so it was dropped).
    pub fn expired(&self) -> bool {
        self.state.phase.get() == Phase::Expired
    }

    /// Runs `future` under this deadline (asyncio's `async with cm:`). A `Timeout` is
    /// entered once: a second `wrap`'s future ends with [`Error::InvalidState`].
    pub fn wrap<F: StdFuture>(&self, future: F) -> TimeoutScope<F> {
        TimeoutScope {
            future: Some(future),
            state: self.state.clone(),
            sleep: None,
            entered: false,
        }
    }
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match self.state.phase.get() {
            Phase::Created => "created",
            Phase::Entered => "active",
            Phase::Expired => "expired",
            Phase::Finished => "finished",
        };
        let mut d = f.debug_struct("Timeout");
        d.field("state", &phase);
        if self.state.phase.get() == Phase::Entered {
            d.field("when", &self.state.when.get());
        }
        d.finish()
    }
}

/// The future of [`Timeout::wrap`]: the body's output, or [`Error::Timeout`].
#[must_use = "futures do nothing unless awaited"]
pub struct TimeoutScope<F> {
    /// Pinned in place; `None` once dropped (on expiry).
    future: Option<F>,
    state: Rc<State>,
    sleep: Option<Sleep>,
    entered: bool,
}

impl<F> TimeoutScope<F> {
    fn passed(&self) -> bool {
        self.state.when.get().is_some_and(|w| Instant::now() >= w)
    }

    fn expire(&mut self) -> Poll<Result<F::Output, Error>>
    where
        F: StdFuture,
    {
        self.state.phase.set(Phase::Expired);
        self.state.waker.borrow_mut().take();
        self.sleep = None;
        // Dropped in place (allowed for a pinned value): the body's destructors run now.
        self.future = None;
        Poll::Ready(Err(Error::Timeout))
    }
}

impl<F: StdFuture> StdFuture for TimeoutScope<F> {
    type Output = Result<F::Output, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of `self`, only
        // dropped in place (by assigning `None`), and `Drop` does not move it.
        let this = unsafe { self.get_unchecked_mut() };
        if !this.entered {
            if this.state.phase.get() != Phase::Created {
                return Poll::Ready(Err(Error::InvalidState(
                    "the Timeout has already been entered",
                )));
            }
            this.entered = true;
            this.state.phase.set(Phase::Entered);
        } else if this.state.phase.get() == Phase::Entered && this.passed() {
            return this.expire();
        }
        let Some(future) = this.future.as_mut() else {
            return Poll::Ready(Err(Error::InvalidState("the Timeout is over")));
        };
        // SAFETY: see above; the future stays where it is until dropped in place.
        let future = unsafe { Pin::new_unchecked(future) };
        if let Poll::Ready(v) = future.poll(cx) {
            this.state.phase.set(Phase::Finished);
            this.state.waker.borrow_mut().take();
            this.future = None;
            return Poll::Ready(Ok(v));
        }
        if this.passed() {
            return this.expire();
        }
        {
            let mut w = this.state.waker.borrow_mut();
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        match this.state.when.get() {
            None => this.sleep = None,
            Some(when) => {
                if this.sleep.as_ref().is_none_or(|s| s.deadline() != when) {
                    this.sleep = Some(sleep_until(when));
                }
                if let Some(s) = this.sleep.as_mut()
                    && Pin::new(s).poll(cx).is_ready()
                {
                    return this.expire();
                }
            }
        }
        Poll::Pending
    }
}

impl<F> Drop for TimeoutScope<F> {
    fn drop(&mut self) {
        // Dropped while entered (the owner was cancelled): over, not expired.
        if self.entered && self.state.phase.get() == Phase::Entered {
            self.state.phase.set(Phase::Finished);
            self.state.waker.borrow_mut().take();
        }
    }
}
