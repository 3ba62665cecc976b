//! [`Lock`]: asyncio's `Lock`, loop-local, FIFO, with a guard that releases on drop.

use std::cell::RefCell;
use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::NotAcquired;
use super::waiters::{Waiters, wake};

struct State {
    locked: bool,
    /// Bumped at every acquisition: a guard releases only the hold it got.
    epoch: u64,
    waiters: Waiters,
}

/// asyncio's `Lock`: `acquire().await` gives a [`LockGuard`]; dropping it releases.
///
/// Waiters acquire in FIFO order and a new `acquire` never barges past a waiter
/// (asyncio's fairness); a waiter whose future is dropped after it was woken passes the
/// wake-up on. Cloning gives another handle to the same lock.
///
/// ```
/// ringloop::run(async {
///     let lock = ringloop::Lock::new();
///     let guard = lock.acquire().await;
///     assert!(lock.locked());
///     drop(guard);
///     assert!(!lock.locked());
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Lock {
    state: Rc<RefCell<State>>,
}

impl Default for Lock {
    fn default() -> Self {
        Self::new()
    }
}

impl Lock {
    /// An unlocked lock.
    pub fn new() -> Self {
        Lock {
            state: Rc::new(RefCell::new(State {
                locked: false,
                epoch: 0,
                waiters: Waiters::new(),
            })),
        }
    }

    /// Whether the lock is held.
    pub fn locked(&self) -> bool {
        self.state.borrow().locked
    }

    /// How many acquirers are queued (asyncio's `waiters:N` in its repr).
    pub fn waiters(&self) -> usize {
        self.state.borrow().waiters.len()
    }

    /// Waits for the lock (FIFO) and holds it until the guard is dropped.
    pub fn acquire(&self) -> Acquire {
        Acquire {
            lock: self.clone(),
            key: None,
            done: false,
        }
    }

    /// asyncio's unguarded `release()`: releases whoever holds the lock (a guard whose
    /// hold was released this way does nothing when dropped). Errors if unlocked.
    pub fn release(&self) -> Result<(), NotAcquired> {
        let waker = {
            let mut s = self.state.borrow_mut();
            if !s.locked {
                return Err(NotAcquired("Lock is not acquired"));
            }
            s.locked = false;
            s.waiters.notify_first()
        };
        wake(waker);
        Ok(())
    }

    /// Whether `other` is a handle to this same lock.
    pub(crate) fn same(&self, other: &Lock) -> bool {
        Rc::ptr_eq(&self.state, &other.state)
    }

    fn take(&self, s: &mut State) -> LockGuard {
        s.locked = true;
        s.epoch += 1;
        LockGuard {
            lock: self.clone(),
            epoch: s.epoch,
        }
    }
}

impl fmt::Display for Lock {
    /// asyncio's repr extras: `<Lock [locked, waiters:2]>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.borrow();
        let what = if s.locked { "locked" } else { "unlocked" };
        match s.waiters.len() {
            0 => write!(f, "<Lock [{what}]>"),
            n => write!(f, "<Lock [{what}, waiters:{n}]>"),
        }
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The future of [`Lock::acquire`].
#[must_use = "futures do nothing unless awaited"]
pub struct Acquire {
    lock: Lock,
    key: Option<usize>,
    done: bool,
}

impl StdFuture for Acquire {
    type Output = LockGuard;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LockGuard> {
        let this = &mut *self;
        let lock = this.lock.clone();
        let mut s = lock.state.borrow_mut();
        match this.key {
            None => {
                if !s.locked && s.waiters.is_empty() {
                    this.done = true;
                    return Poll::Ready(lock.take(&mut s));
                }
                this.key = Some(s.waiters.push_back(cx.waker()));
                Poll::Pending
            }
            Some(key) => {
                if s.waiters.is_notified(key) {
                    s.waiters.remove(key);
                    this.key = None;
                    this.done = true;
                    return Poll::Ready(lock.take(&mut s));
                }
                s.waiters.update_waker(key, cx.waker());
                Poll::Pending
            }
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // asyncio's CancelledError branch: if the lock is free, make sure the first
            // waiter runs (a woken waiter that goes away passes its wake-up on).
            let waker = {
                let mut s = self.lock.state.borrow_mut();
                s.waiters.remove(key);
                if s.locked {
                    None
                } else {
                    s.waiters.notify_first()
                }
            };
            wake(waker);
        }
    }
}

/// Holds a [`Lock`]; dropping it releases the lock.
#[must_use = "dropping the guard releases the lock at once"]
pub struct LockGuard {
    lock: Lock,
    epoch: u64,
}

impl LockGuard {
    /// The lock this guard holds.
    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// Whether this guard's hold is still the lock's current one (false after an
    /// unguarded [`Lock::release`]).
    pub fn is_current(&self) -> bool {
        let s = self.lock.state.borrow();
        s.locked && s.epoch == self.epoch
    }

    /// Keeps the lock held without a guard (asyncio style); [`Lock::release`] ends it.
    pub fn forget(self) {
        std::mem::forget(self)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.is_current() {
            let _ = self.lock.release();
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("current", &self.is_current())
            .finish()
    }
}
