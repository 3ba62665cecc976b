//! [`Semaphore`] and [`BoundedSemaphore`]: asyncio's (3.12+) semaphores, loop-local.
//!
//! As in CPython: a release hands its unit to the first waiter at once (the value is
//! decremented when the waiter is woken), `locked()` is true while any waiter is queued,
//! so a new `acquire` never barges; a woken waiter that is dropped gives its unit back
//! and wakes the next; a waiter that acquires wakes as many more as the value allows.

use std::cell::RefCell;
use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::TooManyReleases;
use super::waiters::{Waiters, wake};

struct State {
    value: usize,
    /// `Some(initial)` for a bounded semaphore.
    bound: Option<usize>,
    waiters: Waiters,
}

impl State {
    fn locked(&self) -> bool {
        self.value == 0 || !self.waiters.is_empty()
    }

    /// asyncio's `_wake_up_next`.
    fn wake_up_next(&mut self) -> Option<Option<Waker>> {
        let w = self.waiters.notify_next(false)?;
        self.value -= 1;
        Some(w)
    }

    /// asyncio's `while self._value > 0: if not self._wake_up_next(): break`.
    fn wake_as_allowed(&mut self, out: &mut Vec<Waker>) {
        while self.value > 0 {
            match self.wake_up_next() {
                Some(w) => out.extend(w),
                None => break,
            }
        }
    }
}

/// asyncio's `Semaphore`: `acquire().await` gives a [`SemaphoreGuard`] that releases on
/// drop; [`Semaphore::release`] is the unguarded asyncio style.
///
/// ```
/// ringloop::run(async {
///     let sem = ringloop::Semaphore::new(2);
///     let a = sem.acquire().await;
///     let _b = sem.acquire().await;
///     assert!(sem.locked());
///     drop(a);
///     assert!(!sem.locked());
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Semaphore {
    state: Rc<RefCell<State>>,
}

impl Semaphore {
    /// A semaphore with `value` units.
    pub fn new(value: usize) -> Self {
        Self::with_bound(value, None)
    }

    fn with_bound(value: usize, bound: Option<usize>) -> Self {
        Semaphore {
            state: Rc::new(RefCell::new(State {
                value,
                bound,
                waiters: Waiters::new(),
            })),
        }
    }

    /// True when `acquire` would wait: no unit left, or others are queued (FIFO).
    pub fn locked(&self) -> bool {
        self.state.borrow().locked()
    }

    /// The units left (asyncio's `_value`).
    pub fn value(&self) -> usize {
        self.state.borrow().value
    }

    /// How many acquirers are queued (woken ones stay until they run).
    pub fn waiters(&self) -> usize {
        self.state.borrow().waiters.len()
    }

    /// Waits (FIFO) for a unit.
    pub fn acquire(&self) -> SemaphoreAcquire {
        SemaphoreAcquire {
            sem: self.clone(),
            key: None,
        }
    }

    /// Adds a unit and wakes the next waiter. A [`BoundedSemaphore`] errors instead of
    /// going above its initial value.
    pub fn release(&self) -> Result<(), TooManyReleases> {
        let waker = {
            let mut s = self.state.borrow_mut();
            if let Some(bound) = s.bound
                && s.value >= bound
            {
                return Err(TooManyReleases);
            }
            s.value += 1;
            s.wake_up_next()
        };
        wake(waker.flatten());
        Ok(())
    }
}

impl fmt::Display for Semaphore {
    /// asyncio's repr extras: `<Semaphore [unlocked, value:1]>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.borrow();
        let name = if s.bound.is_some() {
            "BoundedSemaphore"
        } else {
            "Semaphore"
        };
        if s.locked() {
            write!(f, "<{name} [locked")?;
        } else {
            write!(f, "<{name} [unlocked, value:{}", s.value)?;
        }
        match s.waiters.len() {
            0 => f.write_str("]>"),
            n => write!(f, ", waiters:{n}]>"),
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// asyncio's `BoundedSemaphore`: [`release`](Semaphore::release) above the initial
/// value is an error ([`TooManyReleases`]).
#[derive(Clone, Debug)]
pub struct BoundedSemaphore(Semaphore);

impl BoundedSemaphore {
    /// A bounded semaphore with `value` units, never more.
    pub fn new(value: usize) -> Self {
        BoundedSemaphore(Semaphore::with_bound(value, Some(value)))
    }
}

impl std::ops::Deref for BoundedSemaphore {
    type Target = Semaphore;
    fn deref(&self) -> &Semaphore {
        &self.0
    }
}

/// The future of [`Semaphore::acquire`].
#[must_use = "futures do nothing unless awaited"]
pub struct SemaphoreAcquire {
    sem: Semaphore,
    key: Option<usize>,
}

impl StdFuture for SemaphoreAcquire {
    type Output = SemaphoreGuard;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SemaphoreGuard> {
        let this = &mut *self;
        let guard = || SemaphoreGuard {
            sem: Some(this.sem.clone()),
        };
        let mut wakers = Vec::new();
        let ready = {
            let mut s = this.sem.state.borrow_mut();
            match this.key {
                None if !s.locked() => {
                    s.value -= 1;
                    true
                }
                None => {
                    this.key = Some(s.waiters.push_back(cx.waker()));
                    false
                }
                Some(key) if s.waiters.is_notified(key) => {
                    // The unit was taken for us by `wake_up_next`.
                    s.waiters.remove(key);
                    this.key = None;
                    s.wake_as_allowed(&mut wakers);
                    true
                }
                Some(key) => {
                    s.waiters.update_waker(key, cx.waker());
                    false
                }
            }
        };
        for w in wakers {
            w.wake();
        }
        if ready {
            Poll::Ready(guard())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for SemaphoreAcquire {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut wakers = Vec::new();
            {
                let mut s = self.sem.state.borrow_mut();
                if s.waiters.remove(key) {
                    // Woken, but we will not acquire: give the unit back.
                    s.value += 1;
                }
                s.wake_as_allowed(&mut wakers);
            }
            for w in wakers {
                w.wake();
            }
        }
    }
}

/// Holds one unit of a [`Semaphore`]; dropping it releases the unit.
#[must_use = "dropping the guard releases the unit at once"]
#[derive(Debug)]
pub struct SemaphoreGuard {
    sem: Option<Semaphore>,
}

impl SemaphoreGuard {
    /// Keeps the unit without a guard (asyncio style; [`Semaphore::release`] returns it).
    pub fn forget(mut self) {
        self.sem = None;
    }
}

impl Drop for SemaphoreGuard {
    fn drop(&mut self) {
        if let Some(sem) = self.sem.take() {
            // A bounded semaphore already at its bound was over-released by hand;
            // the guard then has nothing left to return.
            let _ = sem.release();
        }
    }
}
