//! asyncio's synchronization primitives, loop-local: [`Lock`], [`Event`],
//! [`Condition`], [`Semaphore`], [`BoundedSemaphore`], [`Barrier`].
//!
//! `Rc`-based and `!Send`, like asyncio's (not thread-safe) objects: no atomics. Each
//! primitive queues its blocked futures in waiter slots (`waiters.rs`: a slab linked in
//! FIFO order). Fairness and cancellation follow CPython's `Lib/asyncio/locks.py`
//! (3.12+): waiters are served in order, a new acquirer never barges past a queued one,
//! and a waiter whose future is dropped after it was woken passes the wake-up to the
//! next one (the bugs of bpo-27585 and gh-90155 cannot happen). See
//! `docs/sync-and-queues.md`.

mod barrier;
mod condition;
mod event;
mod lock;
mod semaphore;
pub(crate) mod waiters;

pub use barrier::{Barrier, BrokenBarrier, ZeroParties};
pub use condition::{Condition, ConditionWait};
pub use event::{Event, Wait};
pub use lock::{Acquire, Lock, LockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphoreAcquire, SemaphoreGuard};

use std::fmt;

/// asyncio's `RuntimeError('Lock is not acquired.')`: a release of an unlocked lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAcquired(pub(crate) &'static str);

impl fmt::Display for NotAcquired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for NotAcquired {}

impl From<NotAcquired> for crate::Error {
    fn from(e: NotAcquired) -> Self {
        crate::Error::other(e)
    }
}

/// asyncio's `ValueError('BoundedSemaphore released too many times')`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyReleases;

impl fmt::Display for TooManyReleases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoundedSemaphore released too many times")
    }
}

impl std::error::Error for TooManyReleases {}

impl From<TooManyReleases> for crate::Error {
    fn from(e: TooManyReleases) -> Self {
        crate::Error::other(e)
    }
}
