//! [`Condition`]: asyncio's `Condition`, loop-local, over a [`Lock`] of its own or one
//! given with [`Condition::with_lock`].
//!
//! `wait` takes the caller's [`LockGuard`] (the proof that the lock is held), releases
//! the lock, waits for a notify, re-acquires the lock and gives a new guard back. A waiter
//! is popped from the FIFO when it is notified (as CPython's `_notify` marks it done); a
//! notified waiter whose future is dropped, while still waiting to run or while
//! re-acquiring the lock, passes one notify on to the next waiter (gh-112202), so a
//! cancellation never loses a wake-up. Unlike asyncio, a waiter dropped before it was
//! notified passes nothing on: no spurious wake-ups.
//!
//! Rust's cancellation is a drop, and a drop cannot await: a `wait` future that is
//! dropped does not re-acquire the lock (asyncio's cancelled `wait` does, then raises).
//! The guard it took is gone, so the caller holds nothing, and knows it.

use std::cell::RefCell;
use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::NotAcquired;
use super::lock::{Acquire, Lock, LockGuard};
use super::waiters::{Waiters, wake};

/// asyncio's `Condition`: tasks wait (releasing the lock) until another task that holds
/// the lock notifies them.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// ringloop::run(async {
///     let cond = ringloop::Condition::new();
///     let ready = Rc::new(Cell::new(false));
///     let (c, r) = (cond.clone(), ready.clone());
///     let waiter = ringloop::spawn(async move {
///         let guard = c.acquire().await;
///         let _guard = c.wait_for(guard, || r.get()).await.unwrap();
///         // The lock is held again here.
///     });
///     ringloop::yield_now().await;
///     let _guard = cond.acquire().await;
///     ready.set(true);
///     cond.notify_all().unwrap();
///     drop(_guard);
///     waiter.await.unwrap();
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Condition {
    lock: Lock,
    waiters: Rc<RefCell<Waiters>>,
}

impl Default for Condition {
    fn default() -> Self {
        Self::new()
    }
}

impl Condition {
    /// A condition over a new lock of its own.
    pub fn new() -> Self {
        Self::with_lock(Lock::new())
    }

    /// asyncio's `Condition(lock)`: a condition over `lock` (which may be shared with
    /// other conditions or used on its own).
    pub fn with_lock(lock: Lock) -> Self {
        Condition {
            lock,
            waiters: Rc::new(RefCell::new(Waiters::new())),
        }
    }

    /// The underlying lock.
    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// Whether the underlying lock is held.
    pub fn locked(&self) -> bool {
        self.lock.locked()
    }

    /// Acquires the underlying lock (FIFO, as [`Lock::acquire`]).
    pub fn acquire(&self) -> Acquire {
        self.lock.acquire()
    }

    /// The underlying lock's unguarded [`Lock::release`].
    pub fn release(&self) -> Result<(), NotAcquired> {
        self.lock.release()
    }

    /// How many tasks wait for a notify (notified ones are no longer counted).
    pub fn waiters(&self) -> usize {
        self.waiters.borrow().len()
    }

    /// Releases the lock held by `guard`, waits until notified, re-acquires the lock and
    /// returns the new guard. Errors at once, with the lock untouched, if `guard` is not a
    /// current guard of this condition's lock (asyncio's `RuntimeError('cannot wait on
    /// un-acquired lock')`); a guard of another lock is then dropped, releasing it.
    ///
    /// As in asyncio, a wait may end without the predicate the caller waits for being
    /// true: re-check it, or use [`Condition::wait_for`].
    pub fn wait(&self, guard: LockGuard) -> ConditionWait {
        ConditionWait {
            cond: self.clone(),
            phase: Phase::Start(guard),
        }
    }

    /// Waits until `predicate()` is true, calling it with the lock held: first at once,
    /// then after each notify. Returns the guard, the lock held.
    pub async fn wait_for(
        &self,
        mut guard: LockGuard,
        mut predicate: impl FnMut() -> bool,
    ) -> Result<LockGuard, NotAcquired> {
        if !self.holds(&guard) {
            return Err(NotAcquired("cannot wait on un-acquired lock"));
        }
        while !predicate() {
            guard = self.wait(guard).await?;
        }
        Ok(guard)
    }

    /// Wakes up to `n` waiters, in FIFO order. Each returns from `wait` once it has
    /// re-acquired the lock, so the caller should release it. Errors if the lock is not
    /// held (asyncio's `RuntimeError('cannot notify on un-acquired lock')`).
    pub fn notify(&self, n: usize) -> Result<(), NotAcquired> {
        if !self.locked() {
            return Err(NotAcquired("cannot notify on un-acquired lock"));
        }
        self.notify_unchecked(n);
        Ok(())
    }

    /// Wakes every waiter; errors if the lock is not held.
    pub fn notify_all(&self) -> Result<(), NotAcquired> {
        let n = self.waiters();
        self.notify(n)
    }

    /// asyncio's `_notify(n)`: notifies without checking the lock.
    pub(crate) fn notify_unchecked(&self, n: usize) {
        let mut wakers = Vec::new();
        {
            let mut w = self.waiters.borrow_mut();
            for _ in 0..n {
                match w.notify_next(true) {
                    Some(waker) => wakers.extend(waker),
                    None => break,
                }
            }
        }
        for w in wakers {
            w.wake();
        }
    }

    fn holds(&self, guard: &LockGuard) -> bool {
        guard.lock().same(&self.lock) && guard.is_current()
    }
}

impl fmt::Display for Condition {
    /// asyncio's repr extras: `<Condition [locked, waiters:1]>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.locked() { "locked" } else { "unlocked" };
        match self.waiters() {
            0 => write!(f, "<Condition [{what}]>"),
            n => write!(f, "<Condition [{what}, waiters:{n}]>"),
        }
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

enum Phase {
    /// Not polled yet: still holds the caller's guard.
    Start(LockGuard),
    /// Queued for a notify.
    Waiting(usize),
    /// Notified; re-acquiring the lock.
    Reacquire(Acquire),
    Done,
}

/// The future of [`Condition::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct ConditionWait {
    cond: Condition,
    phase: Phase,
}

impl StdFuture for ConditionWait {
    type Output = Result<LockGuard, NotAcquired>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            match &mut this.phase {
                Phase::Start(_) => {
                    let Phase::Start(guard) = std::mem::replace(&mut this.phase, Phase::Done)
                    else {
                        unreachable!()
                    };
                    if !this.cond.holds(&guard) {
                        return Poll::Ready(Err(NotAcquired("cannot wait on un-acquired lock")));
                    }
                    let key = this.cond.waiters.borrow_mut().push_back(cx.waker());
                    this.phase = Phase::Waiting(key);
                    // Releases the lock (and wakes its next acquirer).
                    drop(guard);
                    return Poll::Pending;
                }
                Phase::Waiting(key) => {
                    let key = *key;
                    let mut w = this.cond.waiters.borrow_mut();
                    if !w.is_notified(key) {
                        w.update_waker(key, cx.waker());
                        return Poll::Pending;
                    }
                    w.remove(key);
                    drop(w);
                    this.phase = Phase::Reacquire(this.cond.lock.acquire());
                }
                Phase::Reacquire(acquire) => {
                    let guard = std::task::ready!(Pin::new(acquire).poll(cx));
                    this.phase = Phase::Done;
                    return Poll::Ready(Ok(guard));
                }
                Phase::Done => panic!("Condition::wait polled after it completed"),
            }
        }
    }
}

impl Drop for ConditionWait {
    fn drop(&mut self) {
        let notified = match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Waiting(key) => self.cond.waiters.borrow_mut().remove(key),
            // Dropping the acquire passes the lock's wake-up on, if it had one.
            Phase::Reacquire(acquire) => {
                drop(acquire);
                true
            }
            Phase::Start(_) | Phase::Done => false,
        };
        if notified {
            // This waiter was notified but will not return: hand the notify on.
            let waker = self.cond.waiters.borrow_mut().notify_next(true).flatten();
            wake(waker);
        }
    }
}
