//! [`Barrier`]: asyncio's `Barrier` (3.11+), built on a [`Condition`] as CPython builds
//! it: the states filling, draining, resetting and broken; a waiter entering while the
//! barrier drains or resets blocks until it fills again.
//!
//! A `wait` future dropped (cancelled) after it counted itself in takes itself out again
//! at once (CPython's `finally: self._count -= 1; self._exit()`), so the barrier never
//! waits for a party that went away.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use super::condition::Condition;
use super::lock::LockGuard;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Filling,
    Draining,
    Resetting,
    Broken,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Filling => "filling",
            State::Draining => "draining",
            State::Resetting => "resetting",
            State::Broken => "broken",
        }
    }
}

struct Inner {
    state: State,
    /// Tasks inside `wait` (counted in, not yet out).
    count: usize,
}

/// asyncio's `BrokenBarrierError`: the barrier was aborted, or reset while this task
/// waited in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokenBarrier;

impl fmt::Display for BrokenBarrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the barrier is broken (aborted, or reset while waiting)")
    }
}

impl std::error::Error for BrokenBarrier {}

impl From<BrokenBarrier> for crate::Error {
    fn from(e: BrokenBarrier) -> Self {
        crate::Error::other(e)
    }
}

/// asyncio's `ValueError('parties must be >= 1')`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroParties;

impl fmt::Display for ZeroParties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a barrier needs at least one party")
    }
}

impl std::error::Error for ZeroParties {}

impl From<ZeroParties> for crate::Error {
    fn from(e: ZeroParties) -> Self {
        crate::Error::other(e)
    }
}

/// asyncio's `Barrier`: `parties` tasks call [`Barrier::wait`]; all return together,
/// each with its own index in `0..parties`. Cloning gives another handle to the same
/// barrier.
///
/// ```
/// ringloop::run(async {
///     let barrier = ringloop::Barrier::new(3)?;
///     let tasks: Vec<_> = (0..3)
///         .map(|_| {
///             let b = barrier.clone();
///             ringloop::spawn(async move { b.wait().await })
///         })
///         .collect();
///     let mut indices = Vec::new();
///     for t in tasks {
///         indices.push(t.await??);
///     }
///     indices.sort();
///     assert_eq!(indices, [0, 1, 2]);
///     Ok::<_, ringloop::Error>(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Barrier {
    cond: Condition,
    inner: Rc<RefCell<Inner>>,
    parties: usize,
}

/// Takes a counted-in waiter out of the barrier when it leaves `wait`, however it
/// leaves (returned, broken, or dropped).
struct Exit<'a>(&'a Barrier);

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        let barrier = self.0;
        let notify = {
            let mut i = barrier.inner.borrow_mut();
            i.count -= 1;
            if i.count == 0 && matches!(i.state, State::Resetting | State::Draining) {
                i.state = State::Filling;
            }
            i.count == 0
        };
        if notify {
            barrier.notify_all();
        }
    }
}

impl Barrier {
    /// A barrier for `parties` tasks (at least one).
    pub fn new(parties: usize) -> Result<Self, ZeroParties> {
        if parties == 0 {
            return Err(ZeroParties);
        }
        Ok(Barrier {
            cond: Condition::new(),
            inner: Rc::new(RefCell::new(Inner {
                state: State::Filling,
                count: 0,
            })),
            parties,
        })
    }

    /// How many tasks must call `wait` to trip the barrier.
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// How many tasks wait while the barrier fills (0 while it drains or resets).
    pub fn n_waiting(&self) -> usize {
        let i = self.inner.borrow();
        if i.state == State::Filling {
            i.count
        } else {
            0
        }
    }

    /// Whether the barrier was aborted (until [`Barrier::reset`]).
    pub fn broken(&self) -> bool {
        self.state() == State::Broken
    }

    fn state(&self) -> State {
        self.inner.borrow().state
    }

    fn notify_all(&self) {
        self.cond.notify_unchecked(usize::MAX);
    }

    /// Waits (holding the barrier's lock when called and on return) until `pred`.
    async fn wait_until(&self, guard: LockGuard, pred: impl Fn(State) -> bool) -> LockGuard {
        self.cond
            .wait_for(guard, || pred(self.state()))
            .await
            // The lock is private to the barrier, and every wait here passes the guard
            // of the acquisition it just made: it is always current.
            .expect("the barrier holds its own lock")
    }

    /// Waits until `parties` tasks wait, then returns this task's index (the last to
    /// arrive gets `parties - 1`). A task arriving while the barrier drains or resets
    /// waits for it to fill again. Errors with [`BrokenBarrier`] if the barrier is
    /// aborted, or reset while this task waits.
    pub async fn wait(&self) -> Result<usize, BrokenBarrier> {
        let guard = self.cond.acquire().await;
        // Block while the barrier drains or resets.
        let guard = self
            .wait_until(guard, |s| !matches!(s, State::Draining | State::Resetting))
            .await;
        if self.broken() {
            return Err(BrokenBarrier);
        }
        let index = {
            let mut i = self.inner.borrow_mut();
            i.count += 1;
            i.count - 1
        };
        let exit = Exit(self);
        let (guard, out) = if index + 1 == self.parties {
            // The last party releases the others.
            self.inner.borrow_mut().state = State::Draining;
            self.notify_all();
            (guard, Ok(index))
        } else {
            let guard = self.wait_until(guard, |s| s != State::Filling).await;
            match self.state() {
                State::Broken | State::Resetting => (guard, Err(BrokenBarrier)),
                _ => (guard, Ok(index)),
            }
        };
        // Out of the barrier while the lock is still held, then release it.
        drop(exit);
        drop(guard);
        out
    }

    /// Returns the barrier to filling; tasks waiting in it get [`BrokenBarrier`].
    pub async fn reset(&self) {
        let _guard = self.cond.acquire().await;
        {
            let mut i = self.inner.borrow_mut();
            i.state = if i.count > 0 {
                State::Resetting
            } else {
                State::Filling
            };
        }
        self.notify_all();
    }

    /// Breaks the barrier: waiting tasks, and later `wait`s until a
    /// [`reset`](Barrier::reset), get [`BrokenBarrier`].
    pub async fn abort(&self) {
        let _guard = self.cond.acquire().await;
        self.inner.borrow_mut().state = State::Broken;
        self.notify_all();
    }
}

impl fmt::Display for Barrier {
    /// asyncio's repr extras: `<Barrier [filling, waiters:2/5]>`, `<Barrier [broken]>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        if state == State::Broken {
            write!(f, "<Barrier [{}]>", state.name())
        } else {
            write!(
                f,
                "<Barrier [{}, waiters:{}/{}]>",
                state.name(),
                self.n_waiting(),
                self.parties
            )
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
